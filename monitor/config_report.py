"""Turning configuration mistakes into problems an operator can act on.

pydantic's errors are precise but written for programmers (`Input should be 'a' or 'b'`); these
helpers restate each one against the key path the operator wrote, name the environment variable
when one supplied the value, and suggest the nearest key for a misspelt one. Cross-entry checks
(duplicate ids, parent kinds) run on the raw data so they are reported alongside the rest.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor.errors import Problem
from monitor.model import OrganisationKind, parent_problem

Path = tuple[str | int, ...]

_PLAIN_REASONS = {
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "model_type": "must be a section of keys (a YAML mapping)",
    "model_attributes_type": "must be a section of keys (a YAML mapping)",
    "dict_type": "must be a section of keys (a YAML mapping)",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def describe_errors(
    exc: ValidationError,
    raw: Mapping[str, Any],
    env_sources: Mapping[Path, str],
    root: type[BaseModel],
) -> list[Problem]:
    """One Problem per pydantic error, worded for the person who wrote the config."""
    problems = []
    for error in exc.errors(include_url=False):
        loc: Path = tuple(p for p in error["loc"] if isinstance(p, int) or "[" not in p)
        reason = _reason(error, loc, root)
        problems.append(Problem(_where(loc, raw, env_sources), reason))
    return problems


def cross_check(raw: Mapping[str, Any]) -> list[Problem]:
    """Problems between entries: duplicate ids, IMEIs and serials; parents of the wrong kind."""
    problems: list[Problem] = []
    for section, keys in (("organisations", ("id",)), ("routers", ("id", "imei", "serial"))):
        items = raw.get(section)
        if not isinstance(items, list):
            continue
        for key in keys:
            seen: dict[str, int] = {}
            for index, item in enumerate(items):
                value = item.get(key) if isinstance(item, dict) else None
                if value is None:
                    continue
                first = seen.setdefault(str(value), index)
                if first != index:
                    where = _where((section, index, key), raw, {})
                    problems.append(Problem(where, f"duplicates {section}[{first}].{key}"))
    problems.extend(_parent_problems(raw))
    return problems


def _parent_problems(raw: Mapping[str, Any]) -> list[Problem]:
    items = raw.get("organisations")
    if not isinstance(items, list):
        return []
    kinds = {str(item.get("id")): item.get("kind") for item in items if isinstance(item, dict)}
    problems = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("parent") is None:
            continue
        where = _where(("organisations", index, "parent"), raw, {})
        if str(item["parent"]) == str(item.get("id")):
            problems.append(Problem(where, "an organisation cannot be its own parent"))
            continue
        try:
            kind = OrganisationKind(str(item.get("kind")))
            parent_kind = OrganisationKind(str(kinds[str(item["parent"])]))
        except (KeyError, ValueError):
            continue  # unknown kinds are reported by validation; the parent may be in the DB
        reason = parent_problem(kind, parent_kind)
        if reason:
            problems.append(Problem(where, reason))
    return problems


def _where(loc: Path, raw: Mapping[str, Any], env_sources: Mapping[Path, str]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if len(loc) >= 2 and isinstance(loc[1], int):
        items = raw.get(str(loc[0]))
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            item_id = items[loc[1]].get("id")
            if item_id is not None:
                text += f" (id {item_id})"
    names = [name for path, name in env_sources.items() if path[: len(loc)] == loc]
    names += [env_sources[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in env_sources][:1]
    if names:
        text += f" (from {', '.join(sorted(set(names)))})"
    return text


def _reason(error: Any, loc: Path, root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return _unknown_key(loc, root)
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in _PLAIN_REASONS:
        return _PLAIN_REASONS[kind]
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _unknown_key(loc: Path, root: type[BaseModel]) -> str:
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None:
            break
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    if model is None or not loc:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; known keys: {', '.join(model.model_fields)}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
