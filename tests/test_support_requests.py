"""Support requests end to end: outbox, dispatcher, the emulated ServiceNow portal over HTTP.

Alerts are fired through the real lifecycle and store (`AlertStore.apply`), so each request is
born in the alert's transaction; the dispatcher sends it over real HTTP to the emulated portal,
which fails, rate-limits, hangs and loses replies as asked. Whatever happens, the portal must
hold exactly one incident per episode, quoting the order number and IMEI, raised on behalf of a
school's LA or trust.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import luhn_imei as imei
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.alerts.servicenow import ServiceNowPortal
from monitor.alerts.support import SupportDispatcher
from monitor.core.lifecycle import advance
from monitor.emulator.portal import PortalServer
from monitor.metrics import DaemonMetrics
from monitor.model import (
    Alert,
    Condition,
    Device,
    DeviceKind,
    Organisation,
    OrganisationKind,
    Router,
    Rule,
    Severity,
    SupportRequest,
    SupportRequestKind,
    SupportRequestState,
)
from monitor.store import AlertStore, Inventory, SupportRequests

USER, PASSWORD = "monitor", "portal-pw-never-logged"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
ORGANISATIONS = [
    Organisation("la-1", "LA One", OrganisationKind.LOCAL_AUTHORITY),
    Organisation("trust-1", "Trust One", OrganisationKind.ACADEMY_TRUST),
    Organisation("school-la", "School under LA", OrganisationKind.SCHOOL, "la-1"),
    Organisation("school-trust", "School under trust", OrganisationKind.SCHOOL, "trust-1"),
    Organisation("college-1", "College One", OrganisationKind.COLLEGE),
    Organisation("college-trust", "College in a trust", OrganisationKind.COLLEGE, "trust-1"),
]


class Clock:
    """A settable UTC clock shared by the dispatcher and the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, delta: timedelta) -> None:
        self.now += delta


def router(number: int, organisation: str) -> Router:
    device = Device(f"SER-{number}", DeviceKind.ROUTER, organisation, f"ORD-{number}", imei(number))
    return Router(f"r-{number}", device, iccid=f"8944{number:015d}")


def problem(
    subject: Router,
    rule: Rule = Rule.ROUTER_OFFLINE,
    kind: SupportRequestKind = SupportRequestKind.CONNECTIVITY_SUPPORT,
    **notes: str,
) -> Condition:
    device = subject.device
    return Condition(
        rule,
        Severity.CRITICAL,
        timedelta(0),
        router_id=subject.id,
        organisation_id=device.organisation_id,
        labels={"alertname": rule.value, "router": subject.id},
        annotations={
            "order_number": device.order_number,
            "imei": device.imei or "",
            "iccid": subject.iccid or "",
            **notes,
        },
        request=kind,
    )


def fire(store: AlertStore, condition: Condition, now: datetime) -> Alert:
    step = advance(None, condition, now)
    assert step.fired
    store.apply([step], now)
    return step.alert


def refresh(store: AlertStore, alert: Alert, condition: Condition, now: datetime) -> Alert:
    step = advance(alert, condition, now)
    assert step.updated
    store.apply([step], now)
    return step.alert


def clear(store: AlertStore, alert: Alert, now: datetime) -> Alert:
    step = advance(alert, None, now)
    store.apply([step], now)
    return step.alert


@pytest.fixture
def stores(migrated: Engine) -> tuple[AlertStore, SupportRequests]:
    routers = [router(n, org.id) for n, org in enumerate(ORGANISATIONS[2:], start=1)]
    routers.append(router(9, "la-1"))
    Inventory(migrated).sync_config(ORGANISATIONS, routers)
    return AlertStore(migrated), SupportRequests(migrated)


@pytest.fixture
async def portal() -> AsyncIterator[PortalServer]:
    async with PortalServer(username=USER, password=PASSWORD) as server:
        yield server


def dispatcher(
    stores: tuple[AlertStore, SupportRequests],
    portal: PortalServer,
    clock: Clock,
    *,
    timeout: float = 2.0,
    retry_for: float = 1.0,
    metrics: DaemonMetrics | None = None,
    resolve: bool = True,
    send: tuple[str, ...] | None = None,
) -> SupportDispatcher:
    sink = ServiceNowPortal(portal.url, USER, PASSWORD, timeout=timeout)
    kinds = send if send is not None else tuple(k.value for k in SupportRequestKind)
    return SupportDispatcher(
        *stores,
        sink,
        send_kinds=kinds,
        resolve=resolve,
        retry_for=timedelta(seconds=retry_for),
        metrics=metrics,
        clock=clock,
    )


async def raised(
    stores: tuple[AlertStore, SupportRequests],
    portal: PortalServer,
    clock: Clock,
    **options: Any,
) -> tuple[Alert, SupportDispatcher]:
    """A router at a school under la-1 goes offline; its request is sent to the portal."""
    alert = fire(stores[0], problem(router(1, "school-la")), clock.now)
    sender = dispatcher(stores, portal, clock, **options)
    await sender.dispatch_once()
    return alert, sender


def only(requests: SupportRequests) -> SupportRequest:
    found = requests.find()
    assert len(found) == 1
    return found[0]


async def test_one_incident_quoting_order_number_and_imei_on_behalf_of_the_la(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    alert = fire(alerts, problem(router(1, "school-la")), clock.now)
    request = only(requests)
    assert (request.state, request.on_behalf_of, request.correlation_id) == (
        SupportRequestState.QUEUED,
        "la-1",
        alert.episode_id,
    )
    sender = dispatcher(stores, portal, clock)
    assert await sender.dispatch_once() == 1
    assert await sender.dispatch_once() == 0  # nothing twice
    [incident] = portal.incidents(alert.episode_id)
    assert f"IMEI {imei(1)}" in incident.short_description
    assert "Order number: ORD-1" in incident.description
    assert "SIM ICCID: 8944000000000000001" in incident.description
    assert "Raised on behalf of: la-1" in incident.description
    assert "Do not reset the router" not in incident.description  # no checks given here
    request = only(requests)
    assert (request.state, request.portal_number) == (SupportRequestState.OPEN, incident.number)
    assert request.opened_at == clock.now


@pytest.mark.parametrize(
    ("organisation", "raised_by"),
    [
        ("school-trust", "trust-1"),
        ("college-1", "college-1"),
        ("college-trust", "trust-1"),  # "schools and colleges will need to ask their trust"
        ("la-1", "la-1"),
    ],
)
async def test_who_raises_the_request(
    stores: tuple[AlertStore, SupportRequests], organisation: str, raised_by: str
) -> None:
    alerts, requests = stores
    number = {"school-trust": 2, "college-1": 3, "college-trust": 4, "la-1": 9}[organisation]
    fire(alerts, problem(router(number, organisation)), START)
    assert only(requests).on_behalf_of == raised_by


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("fail_500", {"calls": 3}),
        ("rate_limit", {"calls": 2, "retry_after": 1}),
        ("timeout", {"calls": 1}),
        ("slow", {"calls": 1, "delay": 3.0}),
        ("flaky", {"every": 3}),  # every 2nd would always hit the create after a lookup
        ("lost_reply", {"calls": 1, "methods": ["POST"]}),
    ],
)
async def test_exactly_one_incident_while_the_portal_misbehaves(
    stores: tuple[AlertStore, SupportRequests],
    portal: PortalServer,
    mode: str,
    options: dict[str, object],
) -> None:
    alerts, requests = stores
    clock = Clock()
    alert = fire(alerts, problem(router(1, "school-la")), clock.now)
    portal.set_mode(mode, **options)  # type: ignore[arg-type]
    sender = dispatcher(stores, portal, clock, timeout=1.0, retry_for=1.5)
    for _ in range(20):  # bounded: each round is one claim of what is due
        await sender.dispatch_once()
        if only(requests).state is SupportRequestState.OPEN:
            break
        clock.tick(timedelta(minutes=31))  # past any backoff
    assert only(requests).state is SupportRequestState.OPEN
    assert portal.count(alert.episode_id or "") == 1
    assert sender.failed == 0
    if mode == "rate_limit":
        # Retry-After honoured: the in-process retry waited as asked; the second 429 came too
        # close to the retry budget's end, so the row waited in the outbox instead.
        first, second = portal.requests[:2]
        assert (first.status, second.status) == (429, 429)
        assert second.at - first.at >= 1.0


async def test_portal_down_for_a_day_then_one_incident(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    metrics = DaemonMetrics(CollectorRegistry())
    alert = fire(alerts, problem(router(1, "school-la")), clock.now)
    portal.set_mode("fail_500")
    sender = dispatcher(stores, portal, clock, retry_for=0.2, metrics=metrics)
    for _ in range(24 * 6):  # a simulated day, looking every 10 minutes
        await sender.dispatch_once()
        clock.tick(timedelta(minutes=10))
    tried = len(portal.requests)
    # Backed off (30 s doubling to 30 min), not hammering: a few calls an hour at most.
    assert 24 <= tried <= 24 * 6
    request = only(requests)
    assert request.state is SupportRequestState.QUEUED
    assert request.last_error is not None
    assert "HTTP 500" in request.last_error
    assert PASSWORD not in request.last_error
    sender.publish()
    # The support row and the notify row (no notification dispatcher runs here).
    assert metrics.registry.get_sample_value("router_monitor_outbox_pending") == 2
    portal.set_mode("healthy")
    for _ in range(4):
        await sender.dispatch_once()
        clock.tick(timedelta(minutes=31))
    assert only(requests).state is SupportRequestState.OPEN
    assert portal.count(alert.episode_id or "") == 1
    sender.publish()
    assert metrics.registry.get_sample_value("router_monitor_outbox_pending") == 1
    labels = {"kind": "connectivity_support", "state": "open"}
    assert metrics.registry.get_sample_value("router_monitor_support_requests", labels) == 1


async def test_a_problem_that_cleared_while_the_portal_was_down_is_never_raised(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    alert = fire(alerts, problem(router(1, "school-la")), clock.now)
    portal.set_mode("timeout")
    sender = dispatcher(stores, portal, clock, timeout=0.5, retry_for=0.1)
    await sender.dispatch_once()
    clock.tick(timedelta(hours=3))
    clear(alerts, alert, clock.now)
    portal.set_mode("healthy")
    for _ in range(3):
        await sender.dispatch_once()
        clock.tick(timedelta(minutes=31))
    assert only(requests).state is SupportRequestState.RESOLVED
    assert portal.incidents() == []
    assert [state for _, channel, _, state in alerts.outbox() if channel == "support"] == [
        "sent",
        "sent",
    ]


async def test_permanent_refusal_is_marked_failed_counted_and_not_retried(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    metrics = DaemonMetrics(CollectorRegistry())
    fire(alerts, problem(router(1, "school-la")), clock.now)
    portal.set_mode("auth_fail")
    sender = dispatcher(stores, portal, clock, metrics=metrics)
    assert await sender.dispatch_once() == 1
    calls = len(portal.requests)
    assert calls == 1  # a 401 is not retried
    for _ in range(3):
        clock.tick(timedelta(hours=1))
        assert await sender.dispatch_once() == 0
    assert len(portal.requests) == calls
    request = only(requests)
    assert request.state is SupportRequestState.FAILED
    assert request.last_error is not None
    assert "HTTP 401" in request.last_error
    assert sender.failed == 1
    sender.publish()
    labels = {"kind": "connectivity_support", "state": "failed"}
    assert metrics.registry.get_sample_value("router_monitor_support_requests", labels) == 1


async def test_work_notes_on_change_and_resolution_when_it_clears(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    subject = router(1, "school-la")
    alert = fire(alerts, problem(subject, down_since="09:00"), clock.now)
    sender = dispatcher(stores, portal, clock)
    await sender.dispatch_once()
    clock.tick(timedelta(minutes=5))
    alert = refresh(alerts, alert, problem(subject, down_since="09:00", seen="again"), clock.now)
    await sender.dispatch_once()
    [incident] = portal.incidents(alert.episode_id)
    assert [entry.text for entry in incident.work_notes][-1].startswith(
        "router-monitor: router_offline is firing"
    )
    clock.tick(timedelta(minutes=30))
    clear(alerts, alert, clock.now)
    await sender.dispatch_once()
    [incident] = portal.incidents(alert.episode_id)
    assert (incident.state, incident.close_code) == (6, "Resolved by caller")
    assert "the problem cleared" in incident.close_notes
    assert only(requests).state is SupportRequestState.RESOLVED


async def test_without_auto_resolve_the_incident_gets_a_note_and_stays_open(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, _ = stores
    clock = Clock()
    alert, sender = await raised(stores, portal, clock, resolve=False)
    clock.tick(timedelta(minutes=30))
    clear(alerts, alert, clock.now)
    await sender.dispatch_once()
    [incident] = portal.incidents(alert.episode_id)
    assert incident.state == 1
    assert "the problem cleared" in incident.work_notes[-1].text


async def test_data_cap_requests_are_recorded_not_sent_unless_configured(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    capped = problem(
        router(1, "school-la"), Rule.DATA_CAP_REACHED, SupportRequestKind.DATA_CAP_REACHED
    )
    fire(alerts, capped, clock.now)
    sender = dispatcher(stores, portal, clock, send=("connectivity_support",))
    assert await sender.dispatch_once() == 1
    assert only(requests).state is SupportRequestState.RECORDED
    assert portal.requests == []


async def test_response_tracking_and_overdue_after_three_working_days(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    from monitor.core.rules import AlertRules, overdue

    alerts, requests = stores
    clock = Clock()
    fire(alerts, problem(router(1, "school-la")), clock.now)  # Monday 09:00
    sender = dispatcher(stores, portal, clock)
    await sender.dispatch_once()
    clock.now = datetime(2026, 11, 26, 8, 59, tzinfo=UTC)  # Thursday 08:59: not yet due
    assert overdue(requests.awaiting_response(), clock.now, AlertRules()) == []
    clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    [late] = overdue(requests.awaiting_response(), clock.now, AlertRules())
    assert late.rule is Rule.SUPPORT_REQUEST_OVERDUE
    assert late.annotations["request"] == only(requests).portal_number
    assert await sender.check_responses() == 0  # still New in the portal
    portal.pick_up(only(requests).portal_sys_id or "")
    assert await sender.check_responses() == 1
    assert only(requests).responded_at == clock.now
    assert overdue(requests.awaiting_response(), clock.now, AlertRules()) == []


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import timedelta
    from monitor import store
    from monitor.alerts.servicenow import ServiceNowPortal
    from monitor.alerts.support import SupportDispatcher

    url, portal = sys.argv[1], sys.argv[2]
    engine = store.open_database(url)
    sink = ServiceNowPortal(portal, "monitor", "portal-pw-never-logged", timeout=60)
    sender = SupportDispatcher(
        store.AlertStore(engine), store.SupportRequests(engine), sink,
        send_kinds=["connectivity_support"], lease=timedelta(seconds=2),
        retry_for=timedelta(seconds=60),
    )
    print("claiming", flush=True)
    asyncio.run(sender.dispatch_once())
    """
)


async def test_kill_9_mid_dispatch_then_restart_makes_no_second_incident(
    stores: tuple[AlertStore, SupportRequests],
    portal: PortalServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    alerts, requests = stores
    alert = fire(alerts, problem(router(1, "school-la")), datetime.now(UTC))
    # The create lands in the portal, and its reply never comes: the sender is stuck waiting.
    portal.set_mode("lost_reply", calls=1, methods=["POST"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, database_url, portal.url,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not portal.incidents() and time.monotonic() < deadline:
            assert child.returncode is None, await child.stderr.read() if child.stderr else ""
            await asyncio.sleep(0.05)
        assert portal.count(alert.episode_id or "") == 1  # created, reply lost
        child.send_signal(signal.SIGKILL)  # mid-dispatch: the row is claimed, nothing recorded
        await asyncio.wait_for(child.wait(), timeout=10)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert only(requests).state is SupportRequestState.QUEUED
    assert [s for _, c, _, s in alerts.outbox() if c == "support"] == ["sending"]
    # The restarted sender waits out the dead one's lease, then finds the incident by its id.
    clock = Clock()
    clock.now = datetime.now(UTC) + timedelta(seconds=3)
    sender = dispatcher(stores, portal, clock)
    assert await sender.dispatch_once() == 1
    assert portal.count(alert.episode_id or "") == 1
    request = only(requests)
    assert request.state is SupportRequestState.OPEN
    assert request.portal_number == portal.incidents()[0].number


async def test_mass_outage_raises_one_incident_for_the_group(
    migrated: Engine, portal: PortalServer
) -> None:
    from monitor.core.lifecycle import OutageRules, advance_all, group_outages

    members = [router(n, "school-la") for n in range(20, 26)]
    Inventory(migrated).sync_config(ORGANISATIONS, members)
    alerts, requests = AlertStore(migrated), SupportRequests(migrated)
    clock = Clock()
    down = [replace(problem(member), since=clock.now) for member in members]
    known: dict[str, Alert] = {}
    for _ in range(2):  # the outage's own for-duration is 15 minutes
        clock.tick(timedelta(minutes=16))
        grouped = group_outages(down, known, clock.now, OutageRules())
        steps = [s for s in advance_all(known, grouped, clock.now) if s.changed or s.updated]
        alerts.apply(steps, clock.now)
        known.update({step.alert.fingerprint: step.alert for step in steps})
    sender = dispatcher((alerts, requests), portal, clock)
    await sender.dispatch_once()
    [request] = requests.find()
    assert (request.rule, request.router_id, request.on_behalf_of) == (
        "organisation_outage",
        None,
        "la-1",
    )
    assert len(portal.incidents()) == 1


async def test_every_change_gets_its_work_note(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, _ = stores
    clock = Clock()
    subject = router(1, "school-la")
    alert = fire(alerts, problem(subject, seen="1"), clock.now)
    sender = dispatcher(stores, portal, clock)
    await sender.dispatch_once()
    for seen in ("2", "3", "4"):
        clock.tick(timedelta(minutes=5))
        alert = refresh(alerts, alert, problem(subject, seen=seen), clock.now)
        await sender.dispatch_once()
    [incident] = portal.incidents(alert.episode_id)
    notes = [entry.text for entry in incident.work_notes]
    assert [note.split('"seen": "')[1][0] for note in notes] == ["2", "3", "4"]


async def test_a_refused_resolution_fails_that_step_only(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    alert, sender = await raised(stores, portal, clock)
    clock.tick(timedelta(minutes=30))
    clear(alerts, alert, clock.now)
    portal.set_mode("auth_fail", methods=["PATCH"])
    assert await sender.dispatch_once() == 1
    request = only(requests)
    assert request.state is SupportRequestState.OPEN  # the incident is still there, open
    assert request.last_error is not None
    assert "HTTP 401" in request.last_error
    assert [s for _, c, e, s in alerts.outbox() if c == "support"] == ["sent", "failed"]


async def test_two_dispatchers_share_the_outbox_without_a_second_incident(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    fired = [fire(alerts, problem(router(n, "school-la")), clock.now) for n in (1, 2, 3)]
    portal.set_mode("slow", delay=0.3)
    first, second = dispatcher(stores, portal, clock), dispatcher(stores, portal, clock)
    counts = await asyncio.gather(first.dispatch_once(), second.dispatch_once())
    assert sum(counts) == 3
    for alert in fired:
        assert portal.count(alert.episode_id or "") == 1
    assert {r.state for r in requests.find()} == {SupportRequestState.OPEN}


async def test_an_incident_deleted_in_the_portal_is_not_waited_on_for_ever(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    first = fire(alerts, problem(router(1, "school-la")), clock.now)
    fire(alerts, problem(router(2, "school-trust")), clock.now)
    sender = dispatcher(stores, portal, clock)
    await sender.dispatch_once()
    gone = next(r for r in requests.find() if r.correlation_id == first.episode_id)
    portal.delete(gone.portal_sys_id or "")
    portal.pick_up(next(i.sys_id for i in portal.incidents()))
    assert await sender.check_responses() == 1  # the other one is still checked
    request = requests.get(first.episode_id or "")
    assert request is not None
    assert request.state is SupportRequestState.RESOLVED
    assert request.last_error is not None
    assert request.last_error.startswith("incident gone: ")
    clock.tick(timedelta(minutes=30))
    clear(alerts, first, clock.now)
    assert await sender.dispatch_once() == 1  # nothing to resolve: settled, not failed
    assert sender.failed == 0


async def test_resolving_an_incident_deleted_in_the_portal_closes_the_request(
    stores: tuple[AlertStore, SupportRequests], portal: PortalServer
) -> None:
    alerts, requests = stores
    clock = Clock()
    alert, sender = await raised(stores, portal, clock)
    portal.delete(only(requests).portal_sys_id or "")
    clock.tick(timedelta(minutes=30))
    clear(alerts, alert, clock.now)
    assert await sender.dispatch_once() == 1
    assert only(requests).state is SupportRequestState.RESOLVED
    assert sender.failed == 0
    assert [s for _, c, _, s in alerts.outbox() if c == "support"] == ["sent", "sent"]
