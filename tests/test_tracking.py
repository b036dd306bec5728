"""Usage and health end to end: emulated routers, real collectors, a real database, restarts.

Time is a fake clock shared by the emulated routers and the collectors, so a month of polls
runs in seconds; the routers' ground truth is what the stored month totals must equal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from monitor.collectors.hilink import HilinkCollector
from monitor.collectors.snmp import SnmpCollector
from monitor.core.calendar import month_key
from monitor.core.health import HealthRules
from monitor.emulator.fleet import EmulatedFleet, EmulatedRouter, plan_fleet
from monitor.model import Endpoint, Health, Organisation, OrganisationKind, PollTarget, Protocol
from monitor.profiles import SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile
from monitor.store import HealthStore, Inventory, UsageStore
from monitor.tracking import Tracker, TrackingRules

LONDON = ZoneInfo("Europe/London")
PROFILES = load_profiles(Path(__file__).resolve().parents[1] / "config" / "profiles")
START = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)  # an hour before November, after BST ended


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def seconds(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def fleet(clock: FakeClock) -> AsyncIterator[EmulatedFleet]:
    mix = {"teltonika-rutos7": 1, "if-mib": 1, "huawei-hilink": 1, "cisco-cellular": 1}
    routers = plan_fleet(4, ["la-1"], now=clock.now, seed=5, mix=mix)
    async with EmulatedFleet(clock=clock.seconds) as served:
        await served.start(routers)
        yield served


def tracker(engine: Engine, cap: int = 20 * 10**9) -> Tracker:
    rules = TrackingRules(LONDON, cap, HealthRules())
    made = Tracker(UsageStore(engine), HealthStore(engine), rules)
    made.load()
    return made


def register(engine: Engine, routers: list[EmulatedRouter]) -> None:
    from monitor.config import RouterSettings

    Inventory(engine).sync_config(
        [Organisation("la-1", "LA", OrganisationKind.LOCAL_AUTHORITY)],
        [RouterSettings.model_validate(r.config_entry()).to_model() for r in routers],
    )


def target(router: EmulatedRouter) -> PollTarget:
    endpoint = Endpoint(router.protocol, router.host, router.port, router.profile)
    return PollTarget(router.life.router_id, endpoint, router.snmp, router.http)


async def poll_for(
    routers: list[EmulatedRouter], clock: FakeClock, track: Tracker, minutes: int
) -> None:
    snmp = SnmpCollector(
        {n: p for n, p in PROFILES.items() if isinstance(p, SnmpProfile)}, clock=clock.utc
    )
    hilink = HilinkCollector(
        {n: p for n, p in PROFILES.items() if isinstance(p, HilinkProfile)}, clock=clock.utc
    )
    collectors = {Protocol.SNMP: snmp, Protocol.HILINK: hilink}
    try:
        for _ in range(minutes):
            clock.now += 60
            for router in routers:
                result = await collectors[router.protocol].poll(target(router), 2.0)
                await track.handle(target(router), result)
        await track.flush()  # what a daemon does every half second, and when it stops
    finally:
        await snmp.aclose()
        await hilink.aclose()


def stored_total(engine: Engine, router: EmulatedRouter, month: str) -> int:
    return sum(
        m.total for m in UsageStore(engine).months(router.life.router_id) if m.month == month
    )


async def test_month_totals_match_the_truth_across_month_end_and_restart(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock
) -> None:
    routers = fleet.routers
    register(migrated, routers)
    await poll_for(routers, clock, tracker(migrated), minutes=90)  # crosses 1 November
    # A daemon restart: a new tracker resumes from the database alone.
    await poll_for(routers, clock, tracker(migrated), minutes=30)
    for router in routers:
        life = router.life
        for year, month in ((2026, 10), (2026, 11)):
            truth = life.month_truth(year, month)
            counted = stored_total(migrated, router, f"{year}-{month:02d}")
            assert counted <= truth, (life.router_id, life.model, year, month)
            # The first poll only sets a baseline for models without month counters: at most
            # one poll interval of traffic may be missing, never more.
            lost = truth - counted
            rate = life.received_rate + life.sent_rate
            assert lost <= 61 * rate, (life.router_id, life.model, year, month, lost)


async def test_reboot_and_power_off_change_health_and_never_inflate_usage(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock
) -> None:
    routers = fleet.routers
    register(migrated, routers)
    track = tracker(migrated)
    await poll_for(routers, clock, track, minutes=5)
    victim = routers[0]
    victim.life.reboot(clock.now)
    await poll_for(routers, clock, track, minutes=3)
    victim.life.power(clock.now, False)
    await poll_for(routers, clock, track, minutes=7)
    history = HealthStore(migrated).transitions(victim.life.router_id)
    assert history[0].to_state is Health.UNREACHABLE
    assert "no answer for 5m" in history[0].reason
    month = month_key(clock.utc(), LONDON)
    year, number = (int(part) for part in month.split("-"))
    for router in routers:
        total = stored_total(migrated, router, month)
        assert total <= router.life.month_truth(year, number), router.life.router_id


async def test_cap_reached_makes_the_router_capped(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock
) -> None:
    routers = fleet.routers
    register(migrated, routers)
    track = tracker(migrated, cap=1_000_000)  # 1 MB: every emulated router passes it in minutes
    await poll_for(routers, clock, track, minutes=10)
    states = HealthStore(migrated).load_states()
    assert {state.state for state in states.values()} == {Health.CAPPED}
    assert all(track.health_states[r.life.router_id].state is Health.CAPPED for r in routers)


async def test_a_failing_database_loses_nothing_and_health_goes_on(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import text

    caplog.set_level(logging.INFO, logger="monitor.writeback")
    routers = fleet.routers
    register(migrated, routers)
    track = tracker(migrated)
    await poll_for(routers, clock, track, minutes=3)
    with migrated.begin() as connection:  # the month table disappears from under the daemon
        connection.execute(text("ALTER TABLE usage_months RENAME TO usage_months_away"))
    await poll_for(routers, clock, track, minutes=4)
    assert track.store_errors >= 1
    assert len(track.writes.pending) == len(routers)  # kept: one entry per router, not per poll
    assert caplog.text.count("cannot store poll results") == 1  # said once, not every poll
    assert all(state.state is Health.ONLINE for state in track.health_states.values())
    with migrated.begin() as connection:
        connection.execute(text("ALTER TABLE usage_months_away RENAME TO usage_months"))
    await poll_for(routers, clock, track, minutes=2)
    assert "storing poll results again" in caplog.text
    # The failed polls' bytes were counted when storing worked again: the totals still match.
    month = month_key(clock.utc(), LONDON)
    year, number = (int(part) for part in month.split("-"))
    for router in routers:
        life = router.life
        counted = stored_total(migrated, router, month)
        assert counted <= life.month_truth(year, number)
        assert life.month_truth(year, number) - counted <= 61 * (
            life.received_rate + life.sent_rate
        )


async def test_cap_not_reached_is_not_capped(
    migrated: Engine, fleet: EmulatedFleet, clock: FakeClock
) -> None:
    routers = fleet.routers
    register(migrated, routers)
    track = tracker(migrated, cap=10**12)
    await poll_for(routers, clock, track, minutes=4)
    assert Health.CAPPED not in {state.state for state in track.health_states.values()}


async def test_an_iccid_that_is_not_one_is_treated_as_unknown_and_logged_once(
    migrated: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import timedelta

    from monitor.model import (
        Counter,
        CounterType,
        Device,
        DeviceKind,
        Identity,
        Router,
        Sample,
        Traffic,
    )

    Inventory(migrated).sync_config(
        [Organisation("la-1", "LA", OrganisationKind.LOCAL_AUTHORITY)],
        [Router("r-1", Device("S-1", DeviceKind.ROUTER, "la-1", "ORD-1"), None)],
    )
    track = tracker(migrated)
    good = "8944110000000000011F"  # a trailing hex F is allowed
    junk = "8944" + "1" * 26  # too long for an ICCID (and for the database's column)
    goal = PollTarget("r-1", Endpoint(Protocol.SNMP, "127.0.0.1", 161, "if-mib"))
    for minute, iccid in enumerate([good, junk, junk, "89441100000000ABCD1"]):
        received = Counter(1000 * (minute + 1), CounterType.COUNTER64)
        sample = Sample(
            "r-1",
            START + timedelta(minutes=minute),
            identity=Identity(iccid=iccid),
            traffic=Traffic(received, Counter(0, CounterType.COUNTER64)),
        )
        await track.handle(goal, sample)
    assert await track.flush()
    assert track.usage_states["r-1"].iccid == good  # junk is not a SIM swap: the SIM stays
    assert {m.iccid for m in UsageStore(migrated).months("r-1")} == {good}
    warned = [r.getMessage() for r in caplog.records if "is not 18-22 digits" in r.getMessage()]
    assert len(warned) == 1  # once per router
    assert warned[0].startswith("router r-1: reported ICCID")
