"""Validation rules shared by the config loader and the CSV importer."""

from __future__ import annotations

import re

from monitor.model.inventory import ALLOWED_PARENTS, OrganisationKind

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ORDER_TERM_RE = re.compile(r"^(20\d\d)-(spring|summer|autumn)$")
_ICCID_RE = re.compile(r"^89\d{16,20}$")


def identifier_problem(value: str) -> str | None:
    """Why `value` is not a usable id (of a router or organisation), or None if it is."""
    if _ID_RE.fullmatch(value):
        return None
    return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def imei_problem(value: str) -> str | None:
    """Why `value` is not a valid IMEI (15 digits with a correct Luhn check digit), or None."""
    if len(value) != 15 or not value.isdigit():
        return "must be 15 digits"
    if not _luhn_ok(value):
        return "check digit is wrong (Luhn): is a digit mistyped?"
    return None


def iccid_problem(value: str) -> str | None:
    """Why `value` is not a SIM ICCID (89 followed by 16-20 digits), or None."""
    if _ICCID_RE.fullmatch(value):
        return None
    return "must be a SIM ICCID: 18 to 22 digits starting with 89"


def order_term_problem(value: str) -> str | None:
    """Why `value` is not an order term such as 2020-summer, or None."""
    if _ORDER_TERM_RE.fullmatch(value):
        return None
    return "must be a year and term such as 2020-summer or 2020-autumn"


def parent_problem(kind: OrganisationKind, parent_kind: OrganisationKind | None) -> str | None:
    """Why an organisation of `kind` cannot sit under one of `parent_kind`, or None."""
    allowed = ALLOWED_PARENTS[kind]
    if parent_kind is None or parent_kind in allowed:
        return None
    if not allowed:
        return f"a {kind.value} has no parent organisation"
    names = " or ".join(sorted(k.value for k in allowed))
    return f"the parent of a {kind.value} must be an {names}, not a {parent_kind.value}"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0
