"""The status API served from the database (`monitor api`) answers as the daemon's own does.

Real emulated routers are polled by the real collectors into a real tracker on a fake clock;
then the same requests go to the API reading the tracker's memory (as the daemon serves it) and
to the API reading only what the tracker published to the database (as `monitor api` serves
it). Every answer must be the same: the database is all a separate API process has to go on.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from test_api_tenants import ORGANISATIONS, firing_alert, router_of
from test_tracking import LONDON, FakeClock, clock, fleet, poll_for, register, tracker

from monitor.api import StatusSources, create_api
from monitor.api.sources import Alerts, Held, LiveState, Reads, Stored, StoredAlerts, Tracked
from monitor.emulator.fleet import EmulatedFleet
from monitor.model import Advance, Alert, AlertState
from monitor.store import AlertStore, Inventory
from monitor.store.access import AccessStore
from monitor.store.live import LiveStore, decode

__all__ = ["clock", "fleet"]  # the fixtures used here (from test_tracking)

CAP = 20 * 10**9


async def ready() -> tuple[bool, dict[str, str]]:
    return True, {}


def api(
    engine: Engine, live: LiveState, alerts: Alerts, clock: FakeClock, read: Reads | None = None
) -> TestClient:
    built = StatusSources.build(engine, live, alerts, CAP, LONDON, None, read=read)
    sources = replace(built, clock=clock.utc)
    return TestClient(create_api(ready, CollectorRegistry(), str, sources))


def answers(client: TestClient, paths: list[str], headers: dict[str, str]) -> list[Any]:
    found = []
    for path in paths:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        found.append(answer.json())
    return found


async def test_the_stored_view_answers_as_the_tracker_does(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock
) -> None:
    routers = fleet.routers
    register(migrated, routers)
    track = tracker(migrated)
    await poll_for(routers, clock, track, minutes=10)
    routers[1].life.remove_sim(clock.now)
    routers[2].life.power(clock.now, False)
    await poll_for(routers, clock, track, minutes=8)  # past the 5-minute for-durations
    alerts = {}
    for router in Inventory(migrated).list_routers(True)[:2]:
        alert = firing_alert(router)
        alerts[alert.fingerprint] = alert
    AlertStore(migrated).apply(
        [Advance(a, AlertState.PENDING) for a in alerts.values()], clock.utc()
    )
    _, secret = AccessStore(migrated).create_token("portal", "programme", None)
    headers = {"Authorization": f"Bearer {secret}"}

    memory = api(migrated, Tracked(track), Held(alerts.values), clock)
    stored = api(migrated, Stored(migrated, CAP, LONDON), StoredAlerts(AlertStore(migrated)), clock)
    inline = Reads(inline=True)  # as `monitor api` reads SQLite: on the loop
    stored_inline = api(
        migrated,
        Stored(migrated, CAP, LONDON, inline),
        StoredAlerts(AlertStore(migrated), read=inline),
        clock,
        inline,
    )
    ids = [router.life.router_id for router in routers]
    paths = [f"/api/v1/routers/{router_id}" for router_id in ids]
    paths += ["/api/v1/routers", "/api/v1/alerts", "/api/v1/organisations/la-1/summary"]
    with memory, stored, stored_inline:
        from_memory = answers(memory, paths, headers)
        from_database = answers(stored, paths, headers)
        read_inline = answers(stored_inline, paths, headers)
    assert from_database == from_memory
    assert read_inline == from_memory

    # What the comparison covered: every kind of state, usage with a forecast, failed polls.
    details = {body["id"]: body for body in from_memory[: len(ids)]}
    states = {body["health"]["state"] for body in details.values()}
    assert {"online", "unreachable"} <= states
    assert len(states) >= 3  # and the SIM-less router's (sim_absent or wan_down, by model)
    assert details[ids[2]]["poll"]["failures_in_row"] == 8
    assert details[ids[2]]["poll"]["last_result"] == "timeout"
    assert details[ids[0]]["usage"]["used_bytes"] > 0
    assert details[ids[0]]["usage"]["forecast_bytes"] > details[ids[0]]["usage"]["used_bytes"]
    assert details[ids[0]]["signal"]["rssi_dbm"] is not None
    assert sum(len(body["alerts"]) for body in details.values()) == 2


async def test_the_stored_view_follows_each_batch_and_survives_a_bad_row(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    routers = fleet.routers[:1]
    register(migrated, routers)
    track = tracker(migrated)
    router_id = routers[0].life.router_id
    live = LiveStore(migrated)
    assert live.read(router_id) == (None, None)  # never polled: nothing known

    await poll_for(routers, clock, track, minutes=2)
    record, health = live.read(router_id)
    assert record is not None
    assert record.status is not None
    polled = track.board.get(router_id)
    assert polled is not None
    assert polled.last_sample is not None
    assert record.status.last.at == polled.last.at
    assert record.status.last_success == polled.last_success
    shown = record.status.last_sample
    assert shown is not None
    for name in ("sim", "link", "network_type", "signal", "battery_percent", "uptime_seconds"):
        assert getattr(shown, name) == getattr(polled.last_sample, name), name
    assert shown.identity.iccid == polled.last_sample.identity.iccid
    assert health is not None
    # (`last_at` is stored only with a change that a restart needs: not shown by the API)
    assert replace(health, last_at=None) == replace(track.health_states[router_id], last_at=None)
    first = record.status.last.at

    # Each batch written shows the newest poll.
    routers[0].life.power(clock.now, False)
    await poll_for(routers, clock, track, minutes=1)
    record, _ = live.read(router_id)
    assert record is not None
    assert record.status is not None
    assert record.status.last.at > first
    assert record.status.failures_in_row == 1

    # A body that cannot be read is logged and shown as nothing known, never an error.
    with migrated.begin() as connection:
        connection.execute(text('UPDATE router_live SET body = \'{"v": 1, "last": 3}\''))
    with caplog.at_level(logging.WARNING, logger="monitor.store.live"):
        record, health = live.read(router_id)
    assert record is None
    assert health is not None
    assert f"router {router_id}: its stored live view is unreadable" in caplog.text


async def test_stored_alerts_are_reread_after_their_time(migrated: Engine) -> None:
    now = [0.0]
    store = AlertStore(migrated)
    alerts = StoredAlerts(store, seconds=2.0, clock=lambda: now[0])
    assert list(await alerts()) == []
    inventory = Inventory(migrated)
    inventory.upsert_organisations([o for o in ORGANISATIONS if o.parent_id is None])
    router = router_of(1, ORGANISATIONS[0])
    inventory.upsert_devices([router])
    alert: Alert = firing_alert(router)
    store.apply([Advance(alert, AlertState.PENDING)], alert.updated_at)
    now[0] = 1.9
    assert list(await alerts()) == []  # still the answer read at 0
    now[0] = 2.0
    assert [a.fingerprint for a in await alerts()] == [alert.fingerprint]


@pytest.mark.parametrize(
    "body",
    [
        "null",
        "[]",
        "not json",
        '{"v": 1, "last": 3}',
        '{"v": 1, "last": {"at": "2026-11-28T12:00:00", "failure": "timeout", "detail": ""},'
        ' "failures": 1}',  # a time without its offset
        '{"v": 1, "last": {"at": "2026-11-28T12:00:00+00:00", "failure": "exploded",'
        ' "detail": ""}, "failures": 1}',  # a failure kind that does not exist
        '{"v": 1, "last": {"at": "2026-11-28T12:00:00+00:00", "failure": "timeout",'
        ' "detail": ""}, "failures": 1e400}',
        '{"v": 1, "month": [1]}',
        '{"v": 1, "last": {"at": "2026-11-28T12:00:00+00:00", "failure": null}, "failures": 0}',
    ],
)
def test_an_unreadable_body_is_logged_and_read_as_nothing_known(
    body: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor.store.live"):
        assert decode("r-1", body) is None
    assert "router r-1: its stored live view is unreadable" in caplog.text
