"""Reporting a router lost through the API leads the alert engine to raise `deactivate_sim`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import luhn_imei
from sqlalchemy import Engine
from test_api_tenants import NOW, Caller, World, build_world

from monitor.alerts.engine import AlertEngine
from monitor.core.access import Role
from monitor.core.health import HealthRules
from monitor.core.lifecycle import OutageRules
from monitor.core.rules import AlertRules
from monitor.errors import StoreError
from monitor.model import (
    AlertState,
    Device,
    DeviceKind,
    DeviceStatus,
    Router,
    Rule,
    SupportRequestKind,
)
from monitor.store import AlertStore, HealthStore, Inventory, SupportRequests, UsageStore
from monitor.store.access import AuditEntry
from monitor.tracking import Tracker, TrackingRules

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def world(migrated: Engine) -> Iterator[World]:
    made = build_world(migrated)
    with made.client:
        yield made


async def test_report_stolen_raises_deactivate_sim_for_the_la(world: World) -> None:
    engine = world.engine
    inventory = Inventory(engine)
    tracker = Tracker(
        UsageStore(engine), HealthStore(engine), TrackingRules(LONDON, 20 * 10**9, HealthRules())
    )
    tracker.load()
    alerts = AlertEngine(
        AlertStore(engine), tracker, lambda: inventory.list_routers(True), AlertRules(),
        OutageRules(),
    )  # fmt: skip
    alerts.load()
    await alerts.evaluate(NOW)
    assert not [a for a in alerts.alerts.values() if a.rule is Rule.ROUTER_LOST_OR_STOLEN]

    la_user = world.caller(Role.LA_USER, "la-1")
    router = world.routers["school-la1"]
    answer = world.client.post(
        f"/api/v1/routers/{router.device.imei}/report-lost",
        json={"status": "stolen"},
        headers=la_user.headers,
    )
    assert answer.status_code == 202
    body = answer.json()
    assert body == {
        "router": router.id,
        "serial": router.device.serial,
        "device_status": "stolen",
        "support_request": "deactivate_sim",
        "message": body["message"],
    }
    assert "deactivate SIM request" in body["message"]
    assert inventory.get_device(router.device.serial).status is DeviceStatus.STOLEN

    await alerts.evaluate(NOW + timedelta(seconds=30))
    [lost] = [a for a in alerts.alerts.values() if a.rule is Rule.ROUTER_LOST_OR_STOLEN]
    assert lost.state is AlertState.FIRING
    assert lost.router_id == router.id
    [request] = SupportRequests(engine).find(kind=SupportRequestKind.DEACTIVATE_SIM)
    assert request.router_id == router.id
    assert request.imei == router.device.imei
    assert request.order_number == router.device.order_number
    assert request.on_behalf_of == "la-1"  # the school's LA raises it (guidance)

    # Both the LA and the school see it through the API; another LA does not.
    for who, sees in (("la-1", True), ("school-la1", True), ("la-2", False)):
        role = Role.NOMINATED_ORDERER
        listed = world.client.get(
            "/api/v1/support-requests",
            params={"kind": "deactivate_sim"},
            headers=world.caller(role, who).headers,
        ).json()
        assert [r["correlation_id"] for r in listed["items"]] == (
            [request.correlation_id] if sees else []
        )

    # A portal refusal shows, with why, and the response clock once the portal has it.
    SupportRequests(engine).mark_failed(request.correlation_id, "HTTP 403 not allowed", NOW)
    [shown] = world.client.get(
        "/api/v1/support-requests", params={"state": "failed"}, headers=la_user.headers
    ).json()["items"]
    assert (shown["state"], shown["last_error"]) == ("failed", "HTTP 403 not allowed")
    assert shown["response_due_at"] is None  # never opened in the portal


def test_reporting_an_unmonitored_router_says_no_request_follows(world: World) -> None:
    inventory = Inventory(world.engine)
    device = Device("s-cfg", DeviceKind.ROUTER, "la-1", "ORD-cfg", imei=luhn_imei(77))
    inventory.sync_config([], [Router("r-cfg", device)])
    inventory.sync_config([], [])  # gone from the config: no longer polled
    assert not inventory.get_router("r-cfg").monitored
    la_user = world.caller(Role.LA_USER, "la-1")
    answer = world.client.post(
        "/api/v1/routers/r-cfg/report-lost", json={"status": "lost"}, headers=la_user.headers
    )
    assert answer.status_code == 202
    assert answer.json()["support_request"] is None
    assert "Support Portal" in answer.json()["message"]
    assert inventory.get_device("s-cfg").status is DeviceStatus.LOST


def test_every_report_and_every_refusal_is_audited(world: World) -> None:
    access = world.sources.access
    router = world.routers["school-la1"]
    serial = router.device.serial
    la_user = world.caller(Role.LA_USER, "la-1")
    contact = world.caller(Role.SCHOOL_TECHNICAL_CONTACT, "school-la1")
    other_la = world.caller(Role.LA_USER, "la-2")

    def report(caller: Caller, ref: str, status: str = "stolen") -> int:
        path = f"/api/v1/routers/{ref}/report-lost"
        answer = world.client.post(path, json={"status": status}, headers=caller.headers)
        return answer.status_code

    assert report(la_user, router.device.imei or "") == 202
    assert report(la_user, router.id, "lost") == 202
    assert report(contact, router.id) == 403
    assert report(other_la, router.id) == 404
    assert report(other_la, "r-nowhere") == 404
    bad = world.client.post(
        f"/api/v1/routers/{router.id}/report-lost",
        json={"status": "mislaid"},
        headers=la_user.headers,
    )
    assert bad.status_code == 422  # never reached the route: nobody's report, nothing audited

    rows = [
        (a.token_id, a.role, a.organisation_id, a.device_serial, a.outcome)
        for a in access.audit_log()
    ]
    assert rows == [
        (la_user.token_id, "la_user", "la-1", serial, "reported"),
        (la_user.token_id, "la_user", "la-1", serial, "reported"),
        (contact.token_id, "school_technical_contact", "school-la1", serial, "refused"),
        (other_la.token_id, "la_user", "la-2", serial, "not_found"),
        (other_la.token_id, "la_user", "la-2", "r-nowhere", "not_found"),
    ]
    stolen, lost, refused, elsewhere, nowhere = [a.reason for a in access.audit_log()]
    assert stolen == (
        f"report stolen: router {router.id}; a deactivate_sim request follows (was in_use)"
    )
    assert lost.startswith(f"report lost: router {router.id};")
    assert lost.endswith("(was stolen)")
    assert refused.startswith(f"report stolen: router {router.id}: schools and colleges ask")
    assert elsewhere == f"report stolen: router {router.id} is school-la1's"
    assert nowhere == "report stolen: no router 'r-nowhere'"
    assert all(a.who and a.at == NOW for a in access.audit_log())
    assert Inventory(world.engine).get_device(serial).status is DeviceStatus.LOST


def test_a_report_whose_audit_cannot_be_written_marks_nothing(world: World) -> None:
    access = world.sources.access
    serial = world.routers["la-1"].device.serial
    unwritable = AuditEntry(NOW, "t", "who", "la_user", "la-1", serial, "no-such-outcome", "x")
    with pytest.raises(StoreError):
        access.report_status(serial, DeviceStatus.STOLEN, unwritable)
    assert Inventory(world.engine).get_device(serial).status is DeviceStatus.IN_USE
    assert access.audit_log() == []
