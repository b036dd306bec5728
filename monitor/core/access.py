"""Who may see what: API roles, tenant scoping, and the guidance's device-password rules.

Pure: the API hands in the principal (built from a token), the device record and the
organisations it belongs to; nothing here reads a database or a clock.

The password rules are the support guidance's, to the letter ("Who can access the Support Portal"):

- devices ordered during the 2020 summer term (order term `2020-summer`):
  - given to an LA for social care: only LA users (of that LA);
  - given to an LA for schools: LA users (of that LA) and school technical contacts (of the school
    holding the device);
  - given to a trust for schools: only trust users (of that trust);
- devices ordered from the 2020 autumn term onwards: the users nominated to order devices for the
  organisation the device was ordered for (the device record's organisation).

Everything else is refused, with the reason: an unknown order term or allocation, a term before
the programme began, a programme-wide principal (the guidance names none for passwords).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.model import Allocation, Device, Organisation, OrganisationKind

_TOP = frozenset({OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST})
_SCHOOLS = frozenset({OrganisationKind.SCHOOL, OrganisationKind.COLLEGE})
_TERM_RE = re.compile(r"^(\d{4})-(spring|summer|autumn)$")
_TERMS = ("spring", "summer", "autumn")  # in the order they fall in a calendar year
SUMMER_2020 = (2020, 1)
AUTUMN_2020 = (2020, 2)


class Role(StrEnum):
    """What a token's holder is, in the guidance's words."""

    LA_USER = "la_user"  # works for a local authority
    TRUST_USER = "trust_user"  # works for an academy trust
    SCHOOL_TECHNICAL_CONTACT = "school_technical_contact"  # a school's or college's
    NOMINATED_ORDERER = "nominated_orderer"  # nominated to order devices (autumn 2020 onward)
    PROGRAMME = (
        "programme"  # the support portal itself / programme staff: every router, no passwords
    )


ROLE_KINDS: dict[Role, frozenset[OrganisationKind]] = {
    Role.LA_USER: frozenset({OrganisationKind.LOCAL_AUTHORITY}),
    Role.TRUST_USER: frozenset({OrganisationKind.ACADEMY_TRUST}),
    Role.SCHOOL_TECHNICAL_CONTACT: _SCHOOLS,
    Role.NOMINATED_ORDERER: _TOP | _SCHOOLS,
    Role.PROGRAMME: frozenset(),
}


def role_problem(role: Role, kind: OrganisationKind | None) -> str | None:
    """Why a `role` token cannot belong to an organisation of `kind` (None: no organisation)."""
    allowed = ROLE_KINDS[role]
    if not allowed:
        return None if kind is None else f"a {role.value} token belongs to no organisation"
    if kind is None:
        return f"a {role.value} token needs an organisation"
    if kind not in allowed:
        names = " or ".join(sorted(k.value for k in allowed))
        return f"a {role.value} belongs to a {names}, not a {kind.value}"
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a token's holder, their role and organisation, and what that org covers.

    `children` are the schools and colleges under the organisation (for an LA or a trust).
    """

    token_id: str
    name: str
    role: Role
    organisation: Organisation | None  # None only for the programme role
    children: frozenset[str] = field(default_factory=frozenset)

    @property
    def visible(self) -> frozenset[str] | None:
        """The organisations whose objects this principal sees; None for every organisation."""
        org = self.organisation
        if org is None:
            return None
        if org.kind in _TOP:
            return frozenset({org.id}) | self.children
        return frozenset({org.id})

    def sees(self, organisation_id: str | None) -> bool:
        """Whether an object of `organisation_id` is this principal's to see."""
        visible = self.visible
        if visible is None:
            return True
        return organisation_id is not None and organisation_id in visible


def report_lost_refusal(principal: Principal) -> str | None:
    """Why this principal may not report a router lost or stolen itself, or None if it may.

    LAs and trusts deactivate SIMs through the portal; schools and colleges ask their trust or
    LA to do it on their behalf (guidance). A school with no LA or trust above it raises its own.
    """
    org = principal.organisation
    if org is None or org.kind in _TOP or org.parent_id is None:
        return None
    return (
        "schools and colleges ask their local authority or trust to report a router lost or "
        f"stolen on their behalf (here: {org.parent_id})"
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether device passwords may be shown, and the rule that decided (for the audit)."""

    allowed: bool
    reason: str


def parse_term(term: str | None) -> tuple[int, int] | None:
    """(year, term index) of an order term such as 2020-autumn; None if absent or malformed."""
    match = _TERM_RE.fullmatch(term or "")
    if match is None:
        return None
    return int(match.group(1)), _TERMS.index(match.group(2))


def password_decision(
    principal: Principal, device: Device, holder: Organisation, parent: Organisation | None
) -> Decision:
    """May `principal` see `device`'s BIOS and local admin passwords?

    `holder` is the device's organisation and `parent` the LA or trust above it (if any).
    """
    if holder.id != device.organisation_id or (
        parent is not None and parent.id != holder.parent_id
    ):
        return Decision(False, "the device's organisations do not match its record")
    if not principal.sees(device.organisation_id):
        return Decision(False, "the device is not this organisation's")
    org = principal.organisation
    if org is None:
        return Decision(False, "the guidance lets no programme-wide user view device passwords")
    term = parse_term(device.order_term)
    if term is None:
        return Decision(False, "the device has no order term, so no password rule applies")
    if term >= AUTUMN_2020:
        return _autumn(principal.role, org, device)
    if term == SUMMER_2020:
        return _summer(principal.role, org, holder, parent, device.allocation)
    return Decision(False, f"order term {device.order_term} is before the programme's first")


def _autumn(role: Role, org: Organisation, device: Device) -> Decision:
    rule = f"ordered from autumn 2020 for {device.organisation_id}"
    if role is Role.NOMINATED_ORDERER and org.id == device.organisation_id:
        return Decision(True, f"{rule}: a user nominated to order for it")
    return Decision(False, f"{rule}: only the users nominated to order for it may view")


def _summer(
    role: Role,
    org: Organisation,
    holder: Organisation,
    parent: Organisation | None,
    allocation: Allocation | None,
) -> Decision:
    given_to = holder if holder.kind in _TOP else parent
    if given_to is None or given_to.kind not in _TOP:
        return Decision(False, "summer 2020 device not given to an LA or trust: no rule applies")
    if given_to.kind is OrganisationKind.ACADEMY_TRUST:
        rule = f"summer 2020 device given to trust {given_to.id} for schools"
        if role is Role.TRUST_USER and org.id == given_to.id:
            return Decision(True, f"{rule}: a trust user")
        return Decision(False, f"{rule}: only trust users may view")
    if allocation is None:
        return Decision(False, "summer 2020 LA device of unknown allocation: no rule applies")
    is_la_user = role is Role.LA_USER and org.id == given_to.id
    if allocation is Allocation.SOCIAL_CARE:
        rule = f"summer 2020 device given to LA {given_to.id} for social care"
        if is_la_user:
            return Decision(True, f"{rule}: an LA user")
        return Decision(False, f"{rule}: only LA users may view")
    rule = f"summer 2020 device given to LA {given_to.id} for schools"
    if is_la_user:
        return Decision(True, f"{rule}: an LA user")
    if role is Role.SCHOOL_TECHNICAL_CONTACT and holder.kind in _SCHOOLS and org.id == holder.id:
        return Decision(True, f"{rule}: a technical contact of {holder.id}")
    return Decision(False, f"{rule}: only LA users and school technical contacts may view")
