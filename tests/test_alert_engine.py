"""The alert engine end to end: emulated routers, real collectors, real database, restarts.

A router is switched off; the engine must fire `router_offline` once its for-duration has passed,
queue exactly one notification and one support request for the episode (however often it is
re-evaluated, and after a restart), and resolve both when the router answers again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from alertmanager import BINARY, MISSING, running_alertmanager
from sqlalchemy import Engine
from test_tracking import FakeClock, clock, fleet, poll_for, register, tracker  # noqa: F401

from monitor.alerts.dispatch import NotificationDispatcher
from monitor.alerts.engine import AlertEngine
from monitor.alerts.notify import AlertmanagerNotifier
from monitor.core.lifecycle import OutageRules
from monitor.core.rules import AlertRules
from monitor.emulator.fleet import EmulatedFleet, EmulatedRouter
from monitor.model import AlertState, Rule
from monitor.store import AlertStore, Inventory
from monitor.tracking import Tracker


def engine_for(migrated: Engine, track: Tracker) -> AlertEngine:
    inventory = Inventory(migrated)
    made = AlertEngine(
        AlertStore(migrated), track, lambda: inventory.list_routers(True), AlertRules(),
        OutageRules(),
    )  # fmt: skip
    made.load()
    return made


async def minutes(
    served: EmulatedFleet, fake: FakeClock, track: Tracker, engine: AlertEngine, count: int
) -> None:
    for _ in range(count):
        await poll_for(served.routers, fake, track, minutes=1)
        await engine.evaluate(fake.utc())


async def test_offline_router_fires_once_survives_restart_and_resolves(
    migrated: Engine,
    fleet: EmulatedFleet,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    register(migrated, fleet.routers)
    track = tracker(migrated)
    engine = engine_for(migrated, track)
    await minutes(fleet, clock, track, engine, 4)
    victim = fleet.routers[0]
    victim.life.power(clock.now, False)
    await minutes(fleet, clock, track, engine, 14)  # not yet: 15 minutes from the last answer
    assert not [a for a in engine.alerts.values() if a.state is AlertState.FIRING]
    await minutes(fleet, clock, track, engine, 4)
    firing = [a for a in engine.alerts.values() if a.state is AlertState.FIRING]
    assert [(a.rule, a.router_id) for a in firing] == [(Rule.ROUTER_OFFLINE, victim.life.router_id)]
    episode = firing[0].episode_id
    store = AlertStore(migrated)
    queued = [(channel, event) for ep, channel, event, _ in store.outbox() if ep == episode]
    assert queued == [("notify", "firing"), ("support", "firing")]
    assert store.firing() == {"router_offline": 1}

    # A restart: a new engine on the same database re-derives the same episode, queues nothing.
    engine = engine_for(migrated, track)
    await minutes(fleet, clock, track, engine, 3)
    assert len(store.outbox()) == 2

    victim.life.power(clock.now, True)
    await minutes(fleet, clock, track, engine, 8)
    alert = engine.alerts[firing[0].fingerprint]
    assert alert.state is AlertState.RESOLVED
    assert alert.episode_id == episode
    assert [(channel, event) for _, channel, event, _ in store.outbox()] == [
        ("notify", "firing"),
        ("support", "firing"),
        ("notify", "resolved"),
        ("support", "resolved"),
    ]
    assert store.firing() == {}


async def offline_fired(
    migrated: Engine,
    served: EmulatedFleet,
    fake: FakeClock,
    victim: EmulatedRouter,
) -> tuple[Tracker, AlertEngine, AlertStore]:
    """Three good minutes, then `victim` switched off long enough for router_offline to fire."""
    register(migrated, served.routers)
    track = tracker(migrated)
    engine = engine_for(migrated, track)
    await minutes(served, fake, track, engine, 3)
    victim.life.power(fake.now, False)
    await minutes(served, fake, track, engine, 17)
    return track, engine, AlertStore(migrated)


async def test_dispatcher_delivers_the_episode_to_a_real_alertmanager(
    migrated: Engine,
    fleet: EmulatedFleet,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    tmp_path: Path,
) -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    victim = fleet.routers[1]
    track, engine, store = await offline_fired(migrated, fleet, clock, victim)
    with running_alertmanager(tmp_path / "am") as url:
        # Alertmanager expires alerts by the real clock, so the expiry horizon is real time.
        notifier = AlertmanagerNotifier(url, 5.0)
        dispatcher = NotificationDispatcher(store, [notifier], clock=clock.utc)
        assert await dispatcher.dispatch_once() == 1  # the notify row; support waits its sink
        assert [s for _, c, _, s in store.outbox() if c == "notify"] == ["sent"]
        shown = active_alerts(url)
        assert [(a["labels"]["alertname"], a["labels"]["router"]) for a in shown] == [
            ("router_offline", victim.life.router_id)
        ]
        assert await dispatcher.dispatch_once() == 0  # nothing twice
        victim.life.power(clock.now, True)
        await minutes(fleet, clock, track, engine, 8)
        assert await dispatcher.dispatch_once() == 1
        deadline = time.monotonic() + 10
        # Polling another process's API: there is no event to wait on.
        while active_alerts(url) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # Alertmanager applies a resolution on its own schedule
        assert active_alerts(url) == []
    assert dispatcher.failed == 0


async def test_a_permanent_refusal_is_marked_failed_not_retried(
    migrated: Engine,
    fleet: EmulatedFleet,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    tmp_path: Path,
) -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    _, _, store = await offline_fired(migrated, fleet, clock, fleet.routers[0])
    with running_alertmanager(tmp_path / "am") as url:
        # A wrong path: Alertmanager answers 404, a refusal no retry can mend.
        notifier = AlertmanagerNotifier(url + "/wrong", 5.0, clock=clock.utc)
        dispatcher = NotificationDispatcher(store, [notifier], clock=clock.utc)
        assert await dispatcher.dispatch_once() == 1
        assert await dispatcher.dispatch_once() == 0
    assert [s for _, c, _, s in store.outbox() if c == "notify"] == ["failed"]
    assert dispatcher.failed == 1


def active_alerts(url: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{url}/api/v2/alerts", params={"active": "true"}, timeout=5)
    reply.raise_for_status()
    alerts: list[dict[str, Any]] = reply.json()
    return alerts


async def test_an_evaluation_lets_the_loop_run_between_slices_and_fires_the_same(
    migrated: Engine,
    fleet: EmulatedFleet,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("monitor.alerts.engine.EVALUATION_SLICE", 1)
    victim = fleet.routers[0]
    track, engine, _ = await offline_fired(migrated, fleet, clock, victim)

    turns = 0
    seen: list[int] = []  # the loop turns counted when each router's facts were read
    facts = track.facts

    def counting_facts(router: Any, now: Any) -> Any:
        seen.append(turns)
        return facts(router, now)

    monkeypatch.setattr(track, "facts", counting_facts)

    async def ticking() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    await asyncio.sleep(0)
    await engine.evaluate(clock.utc())
    ticker.cancel()
    assert len(seen) == len(fleet.routers)
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))  # a turn between
    firing = [a for a in engine.alerts.values() if a.state is AlertState.FIRING]
    assert [(a.rule, a.router_id) for a in firing] == [(Rule.ROUTER_OFFLINE, victim.life.router_id)]
