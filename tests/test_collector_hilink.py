"""The HiLink collector against emulated routers over real loopback TCP, fault by fault."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.collectors.hilink import LOGIN_PATH, READ_PATHS, TOKEN_PATHS, HilinkCollector
from monitor.emulator.hilink_server import WRITE_PATHS, HilinkFleet
from monitor.emulator.life import RouterLife
from monitor.model import (
    Counter,
    CounterType,
    Endpoint,
    FailureKind,
    HttpLogin,
    LinkState,
    PollFailure,
    PollTarget,
    Protocol,
    Sample,
    SimState,
)
from monitor.profiles import load_profiles
from monitor.profiles_hilink import HilinkEndpoint, HilinkProfile, ReadPath

PROFILES = Path(__file__).parent.parent / "config" / "profiles"
T0 = 1_710_000_000.0  # 2024-03-09 16:00 UTC
LOGIN = HttpLogin("admin", "S3cret-pass!")
TIMEOUT = 2.0


class FakeClock:
    """One fake time for the emulated routers (epoch seconds) and the collector (datetime)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def make_life(router_id: str = "r1", **fields: object) -> RouterLife:
    values: dict[str, object] = {
        "router_id": router_id,
        "model": "E5576-320",
        "imei": "867098031000017",
        "serial": "G4Q7S19A28001234",
        "iccid": "8944110000000000017",
        "firmware": "21.180.99.11.00(H116SP1C983) & more",
        "battery_percent": 80.0,
        "battery_drain_per_hour": 3.0,
    }
    values.update(fields)
    return RouterLife.born(T0, **values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fleet(clock: FakeClock) -> AsyncIterator[HilinkFleet]:
    async with HilinkFleet(clock=clock) as fleet:
        yield fleet


@pytest.fixture
async def collector(clock: FakeClock) -> AsyncIterator[HilinkCollector]:
    profiles = load_profiles(PROFILES)
    hilink = {name: p for name, p in profiles.items() if isinstance(p, HilinkProfile)}
    collector = HilinkCollector(hilink, clock=clock.utc)
    yield collector
    await collector.aclose()


async def serve(
    fleet: HilinkFleet,
    life: RouterLife,
    variant: str = "e5576",
    login: HttpLogin | None = None,
    credentials: HttpLogin | None = None,
) -> PollTarget:
    host, port = await fleet.add(life, variant=variant, login=login)
    endpoint = Endpoint(Protocol.HILINK, host, port, "huawei-hilink")
    return PollTarget(life.router_id, endpoint, http=credentials)


def paths(fleet: HilinkFleet, router_id: str = "r1") -> list[str]:
    return [record.path for record in fleet.requests(router_id)]


def assert_read_only(fleet: HilinkFleet, router_id: str = "r1") -> None:
    for record in fleet.requests(router_id):
        if record.method == "POST":
            assert record.path == LOGIN_PATH
        else:
            assert record.method == "GET"
            assert record.path in READ_PATHS or record.path in TOKEN_PATHS
        assert record.path not in WRITE_PATHS


def failure(result: Sample | PollFailure) -> PollFailure:
    assert isinstance(result, PollFailure), result
    return result


def sample(result: Sample | PollFailure) -> Sample:
    assert isinstance(result, Sample), result
    return result


def test_a_connection_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="connection_limit must be at least 1, not 0"):
        HilinkCollector({}, connection_limit=0)


def test_profile_paths_are_inside_the_collector_allow_list() -> None:
    from typing import get_args

    assert set(get_args(ReadPath)) <= READ_PATHS


@pytest.mark.parametrize(
    ("variant", "battery", "charging", "has_uptime"),
    [
        ("e5576", 75, False, True),  # 25 % steps: 77 % shown as 75
        ("e5577", 77, False, True),  # 80 % less 3 % in the hour
        ("e3372", None, None, True),  # dongle: empty BatteryPercent
        ("b535", None, None, True),
        ("e5573-old", 75, False, False),  # no uptime, token only through SesTokInfo
    ],
)
async def test_sample_matches_the_life(
    fleet: HilinkFleet,
    collector: HilinkCollector,
    clock: FakeClock,
    variant: str,
    battery: int | None,
    charging: bool | None,
    has_uptime: bool,
) -> None:
    life = make_life()
    target = await serve(fleet, life, variant, login=LOGIN, credentials=LOGIN)
    clock.now += 3600
    got = sample(await collector.poll(target, TIMEOUT))
    assert got.at == clock.utc()
    assert (got.sim, got.link, got.network_type) == (SimState.READY, LinkState.CONNECTED, "LTE")
    assert (got.identity.imei, got.identity.iccid) == (life.imei, life.iccid)
    assert (got.identity.imsi, got.identity.serial) == (life.imsi, life.serial)
    assert (got.identity.model, got.identity.firmware) == (life.model, life.firmware)
    signal = got.signal
    assert (signal.rssi_dbm, signal.rsrp_dbm) == (life.signal_rssi, life.signal_rsrp)
    assert (signal.rsrq_db, signal.sinr_db) == (life.signal_rsrq, life.signal_sinr)
    assert (got.battery_percent, got.charging) == (battery, charging)
    assert got.uptime_seconds == (3600.0 if has_uptime else None)
    assert got.traffic.received == Counter(life.device_received, CounterType.DEVICE)
    assert got.traffic.sent == Counter(life.device_sent, CounterType.DEVICE)
    assert life.device_received == 3600 * 20_000
    assert (got.traffic.month_received, got.traffic.month_sent) == (
        life.month_received,
        life.month_sent,
    )
    assert got.traffic.month_cleared == "2024-3-9"
    assert_read_only(fleet)


async def test_no_sim_and_link_down(
    fleet: HilinkFleet, collector: HilinkCollector, clock: FakeClock
) -> None:
    life = make_life()
    target = await serve(fleet, life)
    life.remove_sim(clock.now)
    got = sample(await collector.poll(target, TIMEOUT))
    assert (got.sim, got.link, got.network_type) == (SimState.ABSENT, LinkState.DISCONNECTED, None)
    assert got.identity.iccid is None
    assert got.signal.rssi_dbm is None
    life.insert_sim(clock.now)
    life.set_link(clock.now, up=False)
    got = sample(await collector.poll(target, TIMEOUT))
    assert (got.sim, got.link) == (SimState.READY, LinkState.DISCONNECTED)


async def test_clear_month_resets_month_counters_and_stamp(
    fleet: HilinkFleet, collector: HilinkCollector, clock: FakeClock
) -> None:
    life = make_life()
    target = await serve(fleet, life)
    clock.now += 2 * 86400
    before = sample(await collector.poll(target, TIMEOUT)).traffic
    life.clear_month(clock.now)
    clock.now += 10
    after = sample(await collector.poll(target, TIMEOUT)).traffic
    assert before.month_received == 2 * 86400 * 20_000
    assert after.month_received == life.month_received == 10 * 20_000
    assert (before.month_cleared, after.month_cleared) == ("2024-3-9", "2024-3-11")
    assert after.received is not None
    assert before.received is not None
    assert after.received.value > before.received.value  # device totals survive a clear


async def test_session_is_reused_across_polls(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life(), login=LOGIN, credentials=LOGIN)
    for _ in range(5):
        sample(await collector.poll(target, TIMEOUT))
    logged = paths(fleet)
    assert logged.count("/") == 1  # e5576: the token comes from the home page, once
    assert logged.count(LOGIN_PATH) == 1
    assert logged.count("/api/device/information") == 6  # 100003 once, then 5 answers
    assert logged.count("/api/webserver/token") + logged.count("/api/webserver/SesTokInfo") == 0


async def test_sestokinfo_source_is_remembered(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life(), variant="e5573-old")
    sample(await collector.poll(target, TIMEOUT))
    fleet.expire_session("r1")
    sample(await collector.poll(target, TIMEOUT))
    logged = paths(fleet)
    assert (logged.count("/"), logged.count("/api/webserver/token")) == (1, 1)
    assert logged.count("/api/webserver/SesTokInfo") == 2


async def test_expired_session_is_retried_exactly_once(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life(), login=LOGIN, credentials=LOGIN)
    sample(await collector.poll(target, TIMEOUT))
    fleet.expire_session("r1")
    start = len(fleet.requests("r1"))
    sample(await collector.poll(target, TIMEOUT))
    logged = paths(fleet)[start:]
    print("requests after expiry:", logged)
    assert logged[:3] == ["/api/monitoring/status", "/", "/api/monitoring/status"]
    assert logged.count("/") == 1
    assert logged.count(LOGIN_PATH) == 1  # the new session is not logged in yet


async def test_a_persistent_125002_is_retried_once_then_bad_reply(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life())
    fleet.router("r1").broken_sessions = True
    got = failure(await collector.poll(target, TIMEOUT))
    assert got.kind is FailureKind.BAD_REPLY
    assert "125002" in got.detail
    assert paths(fleet) == ["/", "/api/monitoring/status", "/", "/api/monitoring/status"]


async def test_no_login_without_100003(fleet: HilinkFleet, collector: HilinkCollector) -> None:
    target = await serve(fleet, make_life(), credentials=LOGIN)  # router asks for no login
    for _ in range(3):
        sample(await collector.poll(target, TIMEOUT))
    assert LOGIN_PATH not in paths(fleet)


async def test_optional_endpoint_needing_login_without_credentials_is_skipped(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life(), login=LOGIN, credentials=None)
    got = sample(await collector.poll(target, TIMEOUT))
    assert got.identity.imei is None
    assert got.link is LinkState.CONNECTED
    assert LOGIN_PATH not in paths(fleet)


async def test_login_required_everywhere(fleet: HilinkFleet, collector: HilinkCollector) -> None:
    life = make_life()
    without = await serve(fleet, life, login=LOGIN)
    fleet.require_login("r1")
    got = failure(await collector.poll(without, TIMEOUT))
    assert got.kind is FailureKind.AUTH
    with_login = PollTarget("r1", without.endpoint, http=LOGIN)
    assert sample(await collector.poll(with_login, TIMEOUT)).identity.imei == life.imei


@pytest.mark.parametrize("fault", ["wrong_credentials", "too_many_attempts"])
async def test_login_refused_is_auth(
    fleet: HilinkFleet,
    collector: HilinkCollector,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    life = make_life()
    target = await serve(fleet, life, login=LOGIN, credentials=LOGIN)
    if fault == "wrong_credentials":
        life.faults.wrong_credentials = True
    else:
        fleet.router("r1").too_many_attempts = True
    got = failure(await collector.poll(target, TIMEOUT))
    print(got)
    assert got.kind is FailureKind.AUTH
    assert ("108006" if fault == "wrong_credentials" else "108007") in got.detail
    secrets = [LOGIN.password] + [s.token for s in fleet.router("r1").sessions.values()]
    for secret in secrets:
        assert secret not in got.detail
        assert secret not in caplog.text


async def test_login_once_per_poll_even_if_rights_stay_missing(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    target = await serve(fleet, make_life(), login=LOGIN, credentials=LOGIN)
    fleet.require_login("r1")
    fleet.router("r1").login_grants_rights = False
    got = failure(await collector.poll(target, TIMEOUT))
    assert got.kind is FailureKind.AUTH
    assert "100003" in got.detail
    assert paths(fleet).count(LOGIN_PATH) == 1


async def test_powered_off_is_timeout(
    fleet: HilinkFleet, collector: HilinkCollector, clock: FakeClock
) -> None:
    life = make_life()
    target = await serve(fleet, life)
    life.power(clock.now, on=False)
    got = failure(await collector.poll(target, 0.3))
    assert got.kind is FailureKind.TIMEOUT


async def test_delay_beyond_the_deadline_is_timeout_within_is_a_sample(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    life = make_life()
    target = await serve(fleet, life)
    life.faults.delay = 0.05
    sample(await collector.poll(target, TIMEOUT))
    life.faults.delay = 0.2  # each of ~7 requests waits: the poll as a whole overruns
    assert failure(await collector.poll(target, 0.5)).kind is FailureKind.TIMEOUT


@pytest.mark.parametrize("fault", ["garbage", "hostile_xml"])
async def test_unreadable_answers_are_bad_reply(
    fleet: HilinkFleet, collector: HilinkCollector, fault: str
) -> None:
    life = make_life()
    target = await serve(fleet, life)
    sample(await collector.poll(target, TIMEOUT))
    if fault == "garbage":
        life.faults.garbage = True
    else:
        fleet.router("r1").hostile_xml = True
    got = failure(await collector.poll(target, TIMEOUT))
    print(got)
    assert got.kind is FailureKind.BAD_REPLY


async def test_closed_port_is_refused(fleet: HilinkFleet, collector: HilinkCollector) -> None:
    target = await serve(fleet, make_life())
    sample(await collector.poll(target, TIMEOUT))
    await fleet.stop("r1")
    assert failure(await collector.poll(target, TIMEOUT)).kind is FailureKind.REFUSED


async def test_unknown_profile_is_unsupported(collector: HilinkCollector) -> None:
    endpoint = Endpoint(Protocol.HILINK, "127.0.0.1", 9, "no-such-profile")
    got = failure(await collector.poll(PollTarget("r9", endpoint), TIMEOUT))
    assert got.kind is FailureKind.UNSUPPORTED


async def test_a_profile_path_outside_the_allow_list_is_never_requested(
    fleet: HilinkFleet, clock: FakeClock
) -> None:
    # Validation already rejects such a path; model_construct skips it to test the last wall.
    endpoint = HilinkEndpoint.model_construct(path="/api/device/control", optional=False)
    rogue = HilinkProfile.model_construct(
        name="rogue", protocol="hilink", description="", endpoints={"x": endpoint}, fields={}
    )
    collector = HilinkCollector({"huawei-hilink": rogue}, clock=clock.utc)
    try:
        target = await serve(fleet, make_life())
        got = failure(await collector.poll(target, TIMEOUT))
    finally:
        await collector.aclose()
    assert got.kind is FailureKind.UNSUPPORTED
    assert "/api/device/control" not in paths(fleet)
    assert_read_only(fleet)


async def test_ipv6_loopback(fleet: HilinkFleet, collector: HilinkCollector) -> None:
    life = make_life()
    try:
        host, port = await fleet.add(life, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    target = PollTarget("r1", Endpoint(Protocol.HILINK, host, port, "huawei-hilink"))
    assert sample(await collector.poll(target, TIMEOUT)).identity.imei == life.imei


async def test_many_routers_share_one_collector(
    fleet: HilinkFleet, collector: HilinkCollector
) -> None:
    lives = [make_life(f"r{n}", imei=f"86709803100{n:04d}") for n in range(10)]
    targets = [await serve(fleet, life, login=LOGIN, credentials=LOGIN) for life in lives]
    for _ in range(2):
        for life, target in zip(lives, targets, strict=True):
            assert sample(await collector.poll(target, TIMEOUT)).identity.imei == life.imei
    for life in lives:
        assert paths(fleet, life.router_id).count(LOGIN_PATH) == 1
        assert_read_only(fleet, life.router_id)


_EMULATOR_PROCESS = """
import asyncio, sys
from monitor.emulator.hilink_server import HilinkFleet
from monitor.emulator.life import RouterLife

async def main():
    async with HilinkFleet() as fleet:
        ports = []
        for n in range(10):
            life = RouterLife.born(0.0, router_id=f"r{n}", model="E5576-320",
                                   imei="867098031000017", serial="S", iccid="8944110000000000017")
            ports.append((await fleet.add(life))[1])
        print(" ".join(map(str, ports)), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


async def test_cpu_per_poll(collector: HilinkCollector) -> None:
    """Prints the collector's CPU ms per poll (not asserted): pytest -s -k cpu_per_poll.

    The emulator runs in a child process, so `process_time` here counts only the collector
    (aiohttp client, XML parsing, Sample building), not the servers.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _EMULATOR_PROCESS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 30)  # readiness: ports printed
        ports = [int(port) for port in line.split()]
        targets = [
            PollTarget(f"r{n}", Endpoint(Protocol.HILINK, "127.0.0.1", port, "huawei-hilink"))
            for n, port in enumerate(ports)
        ]
        for target in targets:
            sample(await collector.poll(target, TIMEOUT))
        polls = 500
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(polls):
            sample(await collector.poll(targets[n % len(targets)], TIMEOUT))
        cpu_ms = (time.process_time() - cpu) * 1000 / polls
        wall_ms = (time.perf_counter() - wall) * 1000 / polls
        print(f"\nhilink collector: {polls} polls of 6 GETs, emulator in a child process:")
        print(f"  {cpu_ms:.3f} ms CPU/poll in the collector, {wall_ms:.2f} ms wall/poll")
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 10)
