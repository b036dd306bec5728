"""The status API's tenant matrix: every role of every organisation kind against every endpoint.

The expected visibility is written out here by hand (not computed with the code under test): an
LA sees itself and its schools, a trust its schools, a school only itself, the programme role
everything; anything else answers 404 with no data of the object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import luhn_imei
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import StatusSources, create_api
from monitor.api.auth import TOKEN_SECONDS
from monitor.api.sources import Held, Tracked
from monitor.core.access import Role, role_problem
from monitor.core.rules import RouterFacts
from monitor.core.status import StatusBoard
from monitor.model import (
    Advance,
    Alert,
    AlertState,
    Device,
    DeviceKind,
    Health,
    HealthState,
    MonthUsage,
    Organisation,
    OrganisationKind,
    Router,
    Rule,
    Severity,
    SupportRequestKind,
    alert_fingerprint,
)
from monitor.store import AlertStore, HealthStore, Inventory, SupportRequests
from monitor.store.access import AccessStore, PasswordCipher

LA, TRUST = OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST
SCHOOL, COLLEGE = OrganisationKind.SCHOOL, OrganisationKind.COLLEGE
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
CAP = 20 * 10**9

ORGANISATIONS = [
    Organisation("la-1", "LA One", LA),
    Organisation("la-2", "LA Two", LA),
    Organisation("trust-1", "Trust One", TRUST),
    Organisation("trust-2", "Trust Two", TRUST),
    Organisation("school-solo", "Standalone School", SCHOOL),
    Organisation("school-la1", "LA One School", SCHOOL, "la-1"),
    Organisation("college-la1", "LA One College", COLLEGE, "la-1"),
    Organisation("school-la2", "LA Two School", SCHOOL, "la-2"),
    Organisation("school-t1", "Trust One School", SCHOOL, "trust-1"),
    Organisation("college-t2", "Trust Two College", COLLEGE, "trust-2"),
]
ALL = frozenset(org.id for org in ORGANISATIONS)
# Written out by hand: what each organisation's tokens may see.
VISIBLE: dict[str | None, frozenset[str]] = {
    "la-1": frozenset({"la-1", "school-la1", "college-la1"}),
    "la-2": frozenset({"la-2", "school-la2"}),
    "trust-1": frozenset({"trust-1", "school-t1"}),
    "trust-2": frozenset({"trust-2", "college-t2"}),
    "school-solo": frozenset({"school-solo"}),
    "school-la1": frozenset({"school-la1"}),
    "college-la1": frozenset({"college-la1"}),
    "school-la2": frozenset({"school-la2"}),
    "school-t1": frozenset({"school-t1"}),
    "college-t2": frozenset({"college-t2"}),
    None: ALL,  # the programme role
}
# May report a router lost: LAs, trusts, the programme, and a school with nobody above it.
MAY_REPORT = {"la-1", "la-2", "trust-1", "trust-2", "school-solo", None}


@dataclass
class Caller:
    """One token of the world."""

    role: Role
    organisation: str | None
    secret: str = field(repr=False)
    token_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


class FakeLive:
    """The tracker's face, with a few routers in known states."""

    def __init__(self) -> None:
        self.board = StatusBoard()
        self.health: dict[str, HealthState] = {}
        self.usage: dict[str, MonthUsage] = {}

    def facts(self, router: Router, now: datetime) -> RouterFacts:
        return RouterFacts(router, self.health.get(router.id), self.usage.get(router.id))


@dataclass
class World:
    """A database with every kind of organisation, a router each, tokens for every role."""

    engine: Engine
    sources: StatusSources
    client: TestClient
    callers: list[Caller]
    routers: dict[str, Router]  # by organisation
    alerts: list[Alert]
    live: FakeLive

    def caller(self, role: Role, organisation: str | None) -> Caller:
        return next(c for c in self.callers if c.role is role and c.organisation == organisation)


def router_of(index: int, org: Organisation) -> Router:
    device = Device(
        f"s-{org.id}", DeviceKind.ROUTER, org.id, f"ORD-{org.id}", imei=luhn_imei(1000 + index)
    )
    return Router(f"r-{org.id}", device, iccid=f"8944{index:016d}")


def firing_alert(router: Router) -> Alert:
    device = router.device
    return Alert(
        fingerprint=alert_fingerprint(Rule.ROUTER_OFFLINE, router.id),
        rule=Rule.ROUTER_OFFLINE,
        state=AlertState.FIRING,
        severity=Severity.CRITICAL,
        updated_at=NOW,
        router_id=router.id,
        organisation_id=device.organisation_id,
        active_since=NOW - timedelta(minutes=20),
        starts_at=NOW - timedelta(minutes=5),
        episode_id=f"ep-{router.id}",
        labels={"alertname": "router_offline", "router": router.id},
        annotations={"imei": device.imei or "", "order_number": device.order_number},
        request=SupportRequestKind.CONNECTIVITY_SUPPORT,
    )


def build_world(engine: Engine, cipher: PasswordCipher | None = None) -> World:
    inventory = Inventory(engine)
    inventory.upsert_organisations([o for o in ORGANISATIONS if o.parent_id is None])
    inventory.upsert_organisations([o for o in ORGANISATIONS if o.parent_id is not None])
    routers = {org.id: router_of(i, org) for i, org in enumerate(ORGANISATIONS)}
    inventory.upsert_devices(list(routers.values()))
    access = AccessStore(engine, clock=lambda: NOW)
    callers = []
    for org in [*ORGANISATIONS, None]:
        for role in Role:
            if role_problem(role, org.kind if org else None) is None:
                record, secret = access.create_token(
                    f"{role} at {org.id if org else '-'}", role.value, org.id if org else None
                )
                callers.append(Caller(role, org.id if org else None, secret, record.id))
    alerts = [firing_alert(router) for router in routers.values()]
    AlertStore(engine).apply([Advance(a, AlertState.PENDING) for a in alerts], NOW)
    live = FakeLive()
    health = HealthStore(engine)
    for org_id, router in routers.items():
        state = Health.CAPPED if org_id == "school-la1" else Health.UNREACHABLE
        live.health[router.id] = HealthState(router.id, state, NOW - timedelta(hours=1))
        health.record(live.health[router.id], None)
    sources = StatusSources(
        inventory, access, SupportRequests(engine), Tracked(live), Held(lambda: alerts), CAP,
        LONDON, cipher, clock=lambda: NOW,
    )  # fmt: skip

    async def ready() -> tuple[bool, dict[str, str]]:
        return True, {}

    client = TestClient(create_api(ready, CollectorRegistry(), str, sources))
    return World(engine, sources, client, callers, routers, alerts, live)


@pytest.fixture
def world(migrated: Engine) -> Iterator[World]:
    made = build_world(migrated)
    with made.client:
        yield made


def no_data_of(body: Any, org_id: str) -> bool:
    """Whether an answer carries nothing identifying another tenant's router or organisation."""
    text = str(body)
    return f"s-{org_id}" not in text and f"ORD-{org_id}" not in text and "LA One" not in text


def test_every_role_fits_every_organisation_kind_it_should(world: World) -> None:
    made = {(c.role, c.organisation) for c in world.callers}
    kinds = {org.id: org.kind for org in ORGANISATIONS}
    assert (Role.PROGRAMME, None) in made
    for org_id, kind in kinds.items():
        assert (Role.NOMINATED_ORDERER, org_id) in made
        assert ((Role.LA_USER, org_id) in made) == (kind is LA)
        assert ((Role.TRUST_USER, org_id) in made) == (kind is TRUST)
        assert ((Role.SCHOOL_TECHNICAL_CONTACT, org_id) in made) == (kind in (SCHOOL, COLLEGE))
    assert len(world.callers) == 1 + 10 + 2 + 2 + 6


def test_router_detail_by_id_and_imei(world: World) -> None:
    wrong = []
    for caller in world.callers:
        for org_id, router in world.routers.items():
            for ref in (router.id, router.device.imei):
                answer = world.client.get(f"/api/v1/routers/{ref}", headers=caller.headers)
                expected = 200 if org_id in VISIBLE[caller.organisation] else 404
                if answer.status_code != expected:
                    wrong.append((caller.role, caller.organisation, ref, answer.status_code))
                elif expected == 404:
                    body = answer.json()
                    assert body["error"] == "not_found"
                    assert no_data_of(body, org_id)
                else:
                    assert answer.json()["id"] == router.id
    assert wrong == []


def test_router_listing_and_its_organisation_filter(world: World) -> None:
    for caller in world.callers:
        seen = VISIBLE[caller.organisation]
        answer = world.client.get("/api/v1/routers", headers=caller.headers)
        assert answer.status_code == 200
        body = answer.json()
        assert {item["organisation"] for item in body["items"]} == seen
        assert body["total"] == len(seen)
        for org_id in ALL:
            filtered = world.client.get(
                "/api/v1/routers", params={"organisation": org_id}, headers=caller.headers
            )
            if org_id in seen:
                assert [i["id"] for i in filtered.json()["items"]] == [f"r-{org_id}"]
            else:
                assert filtered.status_code == 404, (caller, org_id)
                assert no_data_of(filtered.json(), org_id)


def test_organisation_summaries(world: World) -> None:
    for caller in world.callers:
        for org_id in ALL:
            answer = world.client.get(
                f"/api/v1/organisations/{org_id}/summary", headers=caller.headers
            )
            if org_id in VISIBLE[caller.organisation]:
                assert answer.status_code == 200, (caller, org_id)
                assert answer.json()["organisation"]["id"] == org_id
            else:
                assert answer.status_code == 404, (caller, org_id)
                assert no_data_of(answer.json(), org_id)


def test_alerts_and_support_requests_are_scoped(world: World) -> None:
    for caller in world.callers:
        seen = VISIBLE[caller.organisation]
        for path in ("/api/v1/alerts", "/api/v1/support-requests"):
            body = world.client.get(path, headers=caller.headers).json()
            assert {item["organisation_id"] for item in body["items"]} == seen, (caller, path)
            assert body["total"] == len(seen)
            for org_id in ALL - seen:
                answer = world.client.get(
                    path, params={"organisation": org_id}, headers=caller.headers
                )
                assert answer.status_code == 404
            for org_id in ALL - seen:
                answer = world.client.get(
                    path, params={"router": f"r-{org_id}"}, headers=caller.headers
                )
                assert answer.json()["items"] == []


def test_report_lost_scoping_and_who_may(world: World) -> None:
    expected_audit = []
    for caller in world.callers:
        for org_id, router in world.routers.items():
            answer = world.client.post(
                f"/api/v1/routers/{router.id}/report-lost",
                json={"status": "lost"},
                headers=caller.headers,
            )
            if org_id not in VISIBLE[caller.organisation]:
                assert answer.status_code == 404, (caller, org_id)
                assert no_data_of(answer.json(), org_id)
                outcome = "not_found"
            elif caller.organisation in MAY_REPORT:
                assert answer.status_code == 202, (caller, org_id)
                assert answer.json()["device_status"] == "lost"
                outcome = "reported"
            else:
                assert answer.status_code == 403, (caller, org_id)
                assert "local authority or trust" in answer.json()["message"]
                outcome = "refused"
            expected_audit.append((caller.token_id, router.device.serial, outcome))
    # Every report and every refusal, one row each, in order.
    audit = world.sources.access.audit_log()
    assert [(a.token_id, a.device_serial, a.outcome) for a in audit] == expected_audit


def test_passwords_of_other_tenants_devices_answer_404(world: World) -> None:
    for caller in world.callers:
        for org_id, router in world.routers.items():
            answer = world.client.get(
                f"/api/v1/devices/{router.device.serial}/passwords", headers=caller.headers
            )
            if org_id not in VISIBLE[caller.organisation]:
                assert answer.status_code == 404, (caller, org_id)
            else:  # routers have no passwords; no rule lets anyone see them (no order term)
                assert answer.status_code == 403, (caller, org_id, answer.json())


PATHS = [
    "/api/v1/routers",
    "/api/v1/routers/r-la-1",
    "/api/v1/organisations/la-1/summary",
    "/api/v1/alerts",
    "/api/v1/support-requests",
    "/api/v1/devices/s-la-1/passwords",
]
BAD_AUTHORIZATIONS = [
    None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 500, "bearer  ",
]  # fmt: skip


def test_missing_or_bad_tokens_answer_401_json(world: World) -> None:
    for path in PATHS:
        for authorization in BAD_AUTHORIZATIONS:
            headers = {"Authorization": authorization} if authorization else {}
            answer = world.client.get(path, headers=headers)
            assert answer.status_code == 401, (path, authorization)
            assert answer.json()["error"] == "unauthorized"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert "LA One" not in answer.text
    assert world.sources.access.audit_log() == []  # no principal, nothing to audit


def test_revoked_token_answers_401_within_the_seconds_a_valid_token_is_remembered(
    world: World,
) -> None:
    now = [1000.0]

    async def ready() -> tuple[bool, dict[str, str]]:
        return True, {}

    api = create_api(ready, CollectorRegistry(), str, world.sources, clock=lambda: now[0])
    caller = world.caller(Role.LA_USER, "la-1")
    with TestClient(api) as client:
        assert client.get("/api/v1/routers", headers=caller.headers).status_code == 200
        assert world.sources.access.revoke_token(caller.token_id)
        now[0] += TOKEN_SECONDS + 0.1
        assert client.get("/api/v1/routers", headers=caller.headers).status_code == 401
        # A token made meanwhile works at once.
        _, fresh = world.sources.access.create_token("new", Role.LA_USER.value, "la-1")
        assert client.get("/api/v1/routers", headers=bearer(fresh)).status_code == 200


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_api_answers_are_not_for_shared_caches(world: World) -> None:
    caller = world.caller(Role.LA_USER, "la-1")
    for path in ("/api/v1/routers", "/api/v1/routers/nope", "/api/v1/alerts"):
        answer = world.client.get(path, headers=caller.headers)
        assert answer.headers["cache-control"] == "no-store", path
    assert world.client.get("/api/v1/routers").headers["cache-control"] == "no-store"
    assert "cache-control" not in world.client.get("/api/v1/openapi.json").headers
    assert "cache-control" not in world.client.get("/healthz").headers


BAD_PARAMETERS = [
    ("/api/v1/routers", {"limit": "0"}),
    ("/api/v1/routers", {"limit": "many"}),
    ("/api/v1/routers", {"offset": "-1"}),
    ("/api/v1/routers", {"state": "sleepy"}),
    ("/api/v1/routers", {"organisation": "no spaces"}),
    ("/api/v1/alerts", {"rule": "nope"}),
    ("/api/v1/alerts", {"state": "asleep"}),
    ("/api/v1/support-requests", {"kind": "nope"}),
    ("/api/v1/routers/bad%20id", {}),
    ("/api/v1/devices/%00/passwords", {}),
    ("/api/v1/routers", {"organization": "la-1"}),  # a typo must not widen the answer
]


def test_bad_parameters_answer_422_json(world: World) -> None:
    caller = world.caller(Role.PROGRAMME, None)
    for path, params in BAD_PARAMETERS:
        answer = world.client.get(path, params=params, headers=caller.headers)
        assert answer.status_code == 422, (path, params)
        body = answer.json()
        assert body["error"] == "invalid_request"
        assert body["problems"]
        assert body["message"]


def test_report_lost_body_is_checked(world: World) -> None:
    caller = world.caller(Role.LA_USER, "la-1")
    for body in ({"status": "mislaid"}, {}, None):
        answer = world.client.post(
            "/api/v1/routers/r-la-1/report-lost", json=body, headers=caller.headers
        )
        assert answer.status_code == 422


def test_router_detail_carries_state_usage_alerts_requests_and_advice(world: World) -> None:
    caller = world.caller(Role.LA_USER, "la-1")
    router = world.routers["school-la1"]
    live = world.live
    live.usage[router.id] = MonthUsage(
        router.id, router.iccid, "2026-11", 15 * 10**9, 6 * 10**9, False, NOW
    )
    body = world.client.get(f"/api/v1/routers/{router.device.imei}", headers=caller.headers).json()
    assert body["id"] == router.id
    assert body["health"]["state"] == "capped"
    assert body["usage"]["used_bytes"] == 21 * 10**9
    assert body["usage"]["remaining_bytes"] == 0
    assert body["usage"]["capped"] is True
    assert body["usage"]["resets_at"].startswith("2026-12-01T00:00:00")
    assert [a["rule"] for a in body["alerts"]] == ["router_offline"]
    assert [r["kind"] for r in body["open_support_requests"]] == ["connectivity_support"]
    assert body["open_support_requests"][0]["on_behalf_of"] == "la-1"
    assert "cannot be increased" in body["advice"][0]
    assert "1 December 2026" in body["advice"][1]

    offline = world.client.get("/api/v1/routers/r-la-1", headers=caller.headers).json()
    assert offline["health"]["state"] == "unreachable"
    assert any("Do not reset the router" in text for text in offline["advice"])
    assert offline["usage"]["used_bytes"] == 0


def test_listing_filters_by_state_and_paginates(world: World) -> None:
    caller = world.caller(Role.PROGRAMME, None)
    capped = world.client.get(
        "/api/v1/routers", params={"state": "capped"}, headers=caller.headers
    ).json()
    assert [item["id"] for item in capped["items"]] == ["r-school-la1"]
    ids = []
    for offset in range(0, 10, 3):
        page = world.client.get(
            "/api/v1/routers", params={"limit": 3, "offset": offset}, headers=caller.headers
        ).json()
        assert page["total"] == 10
        ids += [item["id"] for item in page["items"]]
    assert ids == sorted(f"r-{org}" for org in ALL)


def test_summary_counts_an_las_schools(world: World) -> None:
    caller = world.caller(Role.LA_USER, "la-1")
    body = world.client.get("/api/v1/organisations/la-1/summary", headers=caller.headers).json()
    assert body["covers"] == ["college-la1", "la-1", "school-la1"]
    assert body["routers"] == 3
    assert body["states"] == {"capped": 1, "unreachable": 2}
    assert body["capped"] == 1
    assert body["open_support_requests"] == 3
    assert body["firing_alerts"] == 3


def test_unknown_paths_and_methods_answer_json(world: World) -> None:
    caller = world.caller(Role.PROGRAMME, None)
    assert (
        world.client.get("/api/v1/nothing", headers=caller.headers).json()["error"] == "not_found"
    )
    answer = world.client.delete("/api/v1/routers", headers=caller.headers)
    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"
