"""The access rules, case by case: roles and organisation kinds, scoping, who may report a router
lost, and the guidance's device-password rules (every branch)."""

from __future__ import annotations

import pytest

from monitor.core.access import (
    Principal,
    Role,
    parse_term,
    password_decision,
    report_lost_refusal,
    role_problem,
)
from monitor.model import Allocation, Device, DeviceKind, Organisation, OrganisationKind
from monitor.store.tables import TOKEN_ROLES

LA, TRUST = OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST
SCHOOL, COLLEGE = OrganisationKind.SCHOOL, OrganisationKind.COLLEGE
SOCIAL, SCHOOLS = Allocation.SOCIAL_CARE, Allocation.SCHOOLS

ORGS = {
    org.id: org
    for org in (
        Organisation("la-1", "LA One", LA),
        Organisation("la-2", "LA Two", LA),
        Organisation("trust-1", "Trust One", TRUST),
        Organisation("trust-2", "Trust Two", TRUST),
        Organisation("school-la1", "School", SCHOOL, "la-1"),
        Organisation("school2-la1", "Other school", SCHOOL, "la-1"),
        Organisation("college-la1", "College", COLLEGE, "la-1"),
        Organisation("school-t1", "Trust school", SCHOOL, "trust-1"),
        Organisation("school-solo", "Standalone", SCHOOL),
    )
}
CHILDREN = {
    "la-1": frozenset({"school-la1", "school2-la1", "college-la1"}),
    "trust-1": frozenset({"school-t1"}),
}


def principal(role: Role, org_id: str | None) -> Principal:
    org = ORGS[org_id] if org_id else None
    return Principal("t1", "someone", role, org, CHILDREN.get(org_id or "", frozenset()))


def device(org_id: str, term: str | None, allocation: Allocation | None = None) -> Device:
    return Device("SER1", DeviceKind.WINDOWS_LAPTOP, org_id, "ORD1", None, allocation, term)


def decide(role: Role, who: str | None, dev: Device) -> bool:
    holder = ORGS[dev.organisation_id]
    parent = ORGS[holder.parent_id] if holder.parent_id else None
    return password_decision(principal(role, who), dev, holder, parent).allowed


def test_store_roles_match_core_roles() -> None:
    assert set(TOKEN_ROLES) == {role.value for role in Role}


@pytest.mark.parametrize(
    ("role", "kind", "ok"),
    [
        (Role.LA_USER, LA, True),
        (Role.LA_USER, TRUST, False),
        (Role.LA_USER, SCHOOL, False),
        (Role.LA_USER, None, False),
        (Role.TRUST_USER, TRUST, True),
        (Role.TRUST_USER, LA, False),
        (Role.TRUST_USER, COLLEGE, False),
        (Role.SCHOOL_TECHNICAL_CONTACT, SCHOOL, True),
        (Role.SCHOOL_TECHNICAL_CONTACT, COLLEGE, True),
        (Role.SCHOOL_TECHNICAL_CONTACT, LA, False),
        (Role.SCHOOL_TECHNICAL_CONTACT, TRUST, False),
        (Role.NOMINATED_ORDERER, LA, True),
        (Role.NOMINATED_ORDERER, TRUST, True),
        (Role.NOMINATED_ORDERER, SCHOOL, True),
        (Role.NOMINATED_ORDERER, COLLEGE, True),
        (Role.NOMINATED_ORDERER, None, False),
        (Role.PROGRAMME, None, True),
        (Role.PROGRAMME, LA, False),
    ],
)
def test_role_fits_organisation_kind(role: Role, kind: OrganisationKind | None, ok: bool) -> None:
    problem = role_problem(role, kind)
    assert (problem is None) == ok
    if problem is not None:
        assert role.value in problem


@pytest.mark.parametrize(
    ("org_id", "visible"),
    [
        ("la-1", {"la-1", "school-la1", "school2-la1", "college-la1"}),
        ("trust-1", {"trust-1", "school-t1"}),
        ("la-2", {"la-2"}),
        ("school-la1", {"school-la1"}),
        ("college-la1", {"college-la1"}),
        ("school-solo", {"school-solo"}),
    ],
)
def test_scope_by_organisation_kind(org_id: str, visible: set[str]) -> None:
    for role in (Role.NOMINATED_ORDERER, Role.LA_USER):
        who = principal(role, org_id)
        assert who.visible == visible
        assert all(who.sees(org) == (org in visible) for org in ORGS)
        assert not who.sees(None)


def test_programme_sees_everything() -> None:
    who = principal(Role.PROGRAMME, None)
    assert who.visible is None
    assert who.sees("la-2")
    assert who.sees(None)


@pytest.mark.parametrize(
    ("org_id", "may"),
    [
        ("la-1", True),
        ("trust-1", True),
        ("school-solo", True),  # nobody above it raises requests for it
        ("school-la1", False),
        ("college-la1", False),
        ("school-t1", False),
        (None, True),
    ],
)
def test_who_may_report_lost(org_id: str | None, may: bool) -> None:
    role = Role.PROGRAMME if org_id is None else Role.NOMINATED_ORDERER
    assert (report_lost_refusal(principal(role, org_id)) is None) == may


@pytest.mark.parametrize(
    ("term", "parsed"),
    [
        ("2020-summer", (2020, 1)),
        ("2020-autumn", (2020, 2)),
        ("2021-spring", (2021, 0)),
        ("2020-winter", None),
        ("summer-2020", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_term(term: str | None, parsed: tuple[int, int] | None) -> None:
    assert parse_term(term) == parsed


# (role, principal's organisation, device's organisation, allocation, term) -> may view.
# Summer 2020, LA social care: only LA users (of that LA).
SUMMER_LA_SOCIAL = [
    (Role.LA_USER, "la-1", "la-1", SOCIAL, True),
    (Role.LA_USER, "la-1", "school-la1", SOCIAL, True),
    (Role.LA_USER, "la-2", "la-1", SOCIAL, False),  # another LA (out of scope as well)
    (Role.NOMINATED_ORDERER, "la-1", "la-1", SOCIAL, False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1", "school-la1", SOCIAL, False),
    (Role.NOMINATED_ORDERER, "school-la1", "school-la1", SOCIAL, False),
    (Role.PROGRAMME, None, "la-1", SOCIAL, False),
]
# Summer 2020, LA for schools: LA users and school technical contacts.
SUMMER_LA_SCHOOLS = [
    (Role.LA_USER, "la-1", "la-1", SCHOOLS, True),
    (Role.LA_USER, "la-1", "school-la1", SCHOOLS, True),
    (Role.LA_USER, "la-1", "college-la1", SCHOOLS, True),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1", "school-la1", SCHOOLS, True),
    (Role.SCHOOL_TECHNICAL_CONTACT, "college-la1", "college-la1", SCHOOLS, True),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school2-la1", "school-la1", SCHOOLS, False),  # other school
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1", "la-1", SCHOOLS, False),  # the LA's stock
    (Role.NOMINATED_ORDERER, "la-1", "school-la1", SCHOOLS, False),
    (Role.NOMINATED_ORDERER, "school-la1", "school-la1", SCHOOLS, False),
    (Role.LA_USER, "la-2", "school-la1", SCHOOLS, False),
    (Role.PROGRAMME, None, "school-la1", SCHOOLS, False),
]
# Summer 2020, LA device of unknown allocation: no rule says who, so nobody.
SUMMER_LA_UNKNOWN = [
    (Role.LA_USER, "la-1", "la-1", None, False),
    (Role.LA_USER, "la-1", "school-la1", None, False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1", "school-la1", None, False),
]
# Summer 2020, trust for schools: only trust users (allocation does not matter).
SUMMER_TRUST = [
    (Role.TRUST_USER, "trust-1", "trust-1", None, True),
    (Role.TRUST_USER, "trust-1", "school-t1", None, True),
    (Role.TRUST_USER, "trust-1", "school-t1", SOCIAL, True),
    (Role.TRUST_USER, "trust-2", "school-t1", None, False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-t1", "school-t1", None, False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-t1", "school-t1", SCHOOLS, False),
    (Role.NOMINATED_ORDERER, "trust-1", "school-t1", None, False),
    (Role.NOMINATED_ORDERER, "school-t1", "school-t1", None, False),
    (Role.PROGRAMME, None, "trust-1", None, False),
]
# Summer 2020, a school with no LA or trust: the guidance has no rule for it.
SUMMER_SOLO = [
    (Role.NOMINATED_ORDERER, "school-solo", "school-solo", None, False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-solo", "school-solo", SCHOOLS, False),
]


@pytest.mark.parametrize(
    ("role", "who", "holder", "allocation", "allowed"),
    SUMMER_LA_SOCIAL + SUMMER_LA_SCHOOLS + SUMMER_LA_UNKNOWN + SUMMER_TRUST + SUMMER_SOLO,
)
def test_summer_2020_password_rules(
    role: Role, who: str | None, holder: str, allocation: Allocation | None, allowed: bool
) -> None:
    assert decide(role, who, device(holder, "2020-summer", allocation)) is allowed


# Autumn 2020 onward: the users nominated to order for the device's organisation, only.
AUTUMN = [
    (Role.NOMINATED_ORDERER, "la-1", "la-1", True),
    (Role.NOMINATED_ORDERER, "trust-1", "trust-1", True),
    (Role.NOMINATED_ORDERER, "school-la1", "school-la1", True),
    (Role.NOMINATED_ORDERER, "school-t1", "school-t1", True),
    (Role.NOMINATED_ORDERER, "school-solo", "school-solo", True),
    (Role.NOMINATED_ORDERER, "college-la1", "college-la1", True),
    (Role.NOMINATED_ORDERER, "la-1", "school-la1", False),  # ordered for the school, not the LA
    (Role.NOMINATED_ORDERER, "trust-1", "school-t1", False),
    (Role.NOMINATED_ORDERER, "school-la1", "la-1", False),
    (Role.NOMINATED_ORDERER, "la-2", "la-1", False),
    (Role.LA_USER, "la-1", "la-1", False),
    (Role.LA_USER, "la-1", "school-la1", False),
    (Role.TRUST_USER, "trust-1", "trust-1", False),
    (Role.SCHOOL_TECHNICAL_CONTACT, "school-la1", "school-la1", False),
    (Role.PROGRAMME, None, "la-1", False),
]


@pytest.mark.parametrize("term", ["2020-autumn", "2021-spring", "2021-summer", "2023-autumn"])
@pytest.mark.parametrize(("role", "who", "holder", "allowed"), AUTUMN)
def test_autumn_2020_onward_password_rules(
    term: str, role: Role, who: str | None, holder: str, allowed: bool
) -> None:
    for allocation in (None, SOCIAL, SCHOOLS):  # allocation does not matter from autumn 2020
        assert decide(role, who, device(holder, term, allocation)) is allowed


@pytest.mark.parametrize("term", [None, "", "2020-spring", "2019-autumn", "2020-winter"])
def test_no_or_too_early_order_term_refuses_everyone(term: str | None) -> None:
    for role, who in ((Role.LA_USER, "la-1"), (Role.NOMINATED_ORDERER, "la-1")):
        for allocation in (None, SOCIAL, SCHOOLS):
            assert not decide(role, who, device("la-1", term, allocation))


def test_reasons_name_the_rule() -> None:
    la_user = principal(Role.LA_USER, "la-1")
    holder = ORGS["school-la1"]
    allowed = password_decision(
        la_user, device("school-la1", "2020-summer", SCHOOLS), holder, ORGS["la-1"]
    )
    assert allowed.reason == "summer 2020 device given to LA la-1 for schools: an LA user"
    contact = principal(Role.SCHOOL_TECHNICAL_CONTACT, "school-la1")
    refused = password_decision(
        contact, device("school-la1", "2020-summer", SOCIAL), holder, ORGS["la-1"]
    )
    assert not refused.allowed
    assert refused.reason == (
        "summer 2020 device given to LA la-1 for social care: only LA users may view"
    )
    assert password_decision(
        la_user, device("school-la1", None), holder, ORGS["la-1"]
    ).reason.startswith("the device has no order term")


def test_mismatched_organisations_are_refused() -> None:
    la_user = principal(Role.LA_USER, "la-1")
    dev = device("school-la1", "2020-summer", SCHOOLS)
    assert not password_decision(la_user, dev, ORGS["la-1"], None).allowed  # wrong holder
    assert not password_decision(la_user, dev, ORGS["school-la1"], ORGS["la-2"]).allowed
