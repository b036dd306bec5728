"""Read-only proof: no collector ever writes to a router, whatever the router does.

Every collector polls every emulated model through every fault mode; afterwards the emulators'
own request logs must show only SNMP GET/GETNEXT/GETBULK and only HTTP GETs of read endpoints
(plus the token fetch and the login a HiLink device asks for). The allow-list below is written
from the device facts, not imported from the collectors, so a collector that widened its own
list would fail here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.collectors.hilink import HilinkCollector
from monitor.collectors.snmp import SnmpCollector
from monitor.emulator.fleet import EmulatedFleet, EmulatedRouter, plan_fleet
from monitor.emulator.life import RouterLife
from monitor.model import Endpoint, PollTarget, Protocol
from monitor.profiles import SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile

PROFILES = load_profiles(Path(__file__).resolve().parents[1] / "config" / "profiles")
SNMP_READS = {"get", "getnext", "getbulk"}
HTTP_READS = {
    ("GET", "/"),
    ("GET", "/api/webserver/token"),
    ("GET", "/api/webserver/SesTokInfo"),
    ("POST", "/api/user/login"),
    ("GET", "/api/monitoring/status"),
    ("GET", "/api/pin/status"),
    ("GET", "/api/monitoring/month_statistics"),
    ("GET", "/api/monitoring/traffic-statistics"),
    ("GET", "/api/device/information"),
    ("GET", "/api/device/signal"),
    ("GET", "/api/net/current-plmn"),
    ("GET", "/api/device/basic_information"),
}
WRITE_MARKERS = ("set_cmd", "setCmd", "SetRequest", "/api/device/control", "clear-traffic",
                 "start_date", "/api/dialup/", "/api/device/reboot")  # fmt: skip


def _powered_off(life: RouterLife, now: float) -> None:
    life.power(now, False)


def _slow(life: RouterLife, _: float) -> None:
    life.faults.delay = 2.0


def _garbage(life: RouterLife, _: float) -> None:
    life.faults.garbage = True


def _wrong_credentials(life: RouterLife, _: float) -> None:
    life.faults.wrong_credentials = True


def _heal(life: RouterLife, now: float) -> None:
    life.faults.delay = 0.0
    life.faults.garbage = life.faults.wrong_credentials = False
    life.power(now, True)
    life.set_link(now, True)
    life.insert_sim(now)


FAULTS: list[tuple[str, Callable[[RouterLife, float], None]]] = [
    ("healthy", lambda life, now: None),
    ("reboot", lambda life, now: life.reboot(now)),
    ("sim removed", lambda life, now: life.remove_sim(now)),
    ("sim swapped", lambda life, now: life.insert_sim(now, iccid="8944110000000099990")),
    ("link down", lambda life, now: life.set_link(now, False)),
    ("month cleared", lambda life, now: life.clear_month(now)),
    ("powered off", _powered_off),
    ("slow", _slow),
    ("garbage", _garbage),
    ("wrong credentials", _wrong_credentials),
]


def _target(router: EmulatedRouter) -> PollTarget:
    endpoint = Endpoint(router.protocol, router.host, router.port, router.profile)
    return PollTarget(router.life.router_id, endpoint, router.snmp, router.http)


@pytest.fixture
async def fleet() -> AsyncIterator[EmulatedFleet]:
    routers = plan_fleet(12, ["school-1"], now=time.time(), seed=7)  # every model, v2c and v3
    async with EmulatedFleet() as served:
        await served.start(routers)
        yield served


async def test_no_collector_writes_through_any_fault(fleet: EmulatedFleet) -> None:
    snmp = SnmpCollector({n: p for n, p in PROFILES.items() if isinstance(p, SnmpProfile)})
    hilink = HilinkCollector({n: p for n, p in PROFILES.items() if isinstance(p, HilinkProfile)})
    collectors = {Protocol.SNMP: snmp, Protocol.HILINK: hilink}
    assert {r.profile for r in fleet.routers} == set(PROFILES)  # every shipped model is covered
    outcomes: set[str] = set()
    try:
        for name, fault in FAULTS:
            now = time.time()
            for router in fleet.routers:
                fault(router.life, now)
            for router in fleet.routers:
                result = await collectors[router.protocol].poll(_target(router), 0.5)
                outcomes.add(getattr(result, "kind", "sample"))
                _heal(router.life, time.time())
            if name == "healthy":  # sessions then expire, the next poll must log in again
                for router in fleet.routers:
                    if router.protocol is Protocol.HILINK:
                        fleet.hilink.expire_session(router.life.router_id)
    finally:
        await snmp.aclose()
        await hilink.aclose()

    assert {"sample", "timeout", "bad_reply", "auth"} <= {str(o) for o in outcomes}
    for router in fleet.routers:
        router_id = router.life.router_id
        if router.protocol is Protocol.SNMP:
            records = fleet.snmp.requests(router_id)
            assert records, router_id
            assert not [r for r in records if r.is_set], router_id
            # An SNMPv3 message the agent cannot decrypt (wrong keys) shows no PDU type: it was
            # refused (a report, or dropped), so it cannot have been a write that took effect.
            unread = [r for r in records if r.pdu_type == "?"]
            assert not [r for r in unread if r.outcome == "answered"], router_id
            assert {r.pdu_type for r in records} - {"?"} <= SNMP_READS, router_id
        else:
            requests = {(r.method, r.path) for r in fleet.hilink.requests(router_id)}
            assert requests, router_id
            assert requests <= HTTP_READS, (router_id, requests - HTTP_READS)


def test_no_write_operation_is_named_outside_the_emulator() -> None:
    package = Path(__file__).resolve().parents[1] / "monitor"
    offenders = [
        f"{path.relative_to(package)}: {marker}"
        for path in package.rglob("*.py")
        if "emulator" not in path.parts
        for marker in WRITE_MARKERS
        if marker in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
