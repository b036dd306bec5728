"""A mixed fleet of emulated routers for the demo (`make run`), `monitor emulate` and benchmarks.

`plan_fleet` decides who the routers are (model, identity, credentials, traffic) from a seed, so
the same command gives the same fleet; `EmulatedFleet` serves them on loopback through the SNMP
agents and HiLink web servers of this package; `animate` gives them a life of small mishaps
(reboots, link losses, a SIM taken out and put back, a power-off) for the monitor to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from monitor.emulator.hilink_server import VARIANTS, HilinkFleet
from monitor.emulator.life import RouterLife
from monitor.emulator.snmp_agent import SnmpFleet
from monitor.model import HttpLogin, Protocol, SnmpCredentials, imei_problem

Clock = Callable[[], float]

# Roughly what LAs hold: mostly Teltonika (SNMP) and Huawei pocket routers (HiLink).
DEFAULT_MIX: dict[str, int] = {
    "teltonika-rutos7": 30,
    "huawei-hilink": 30,
    "teltonika-legacy": 10,
    "cisco-cellular": 10,
    "mikrotik-lte": 10,
    "if-mib": 10,
}
SNMP_MODELS = frozenset(DEFAULT_MIX) - {"huawei-hilink"}
_TAC = {"huawei-hilink": "867098", "teltonika-rutos7": "863789", "teltonika-legacy": "862107"}
DEMO_COMMUNITY = "demo-community"  # the emulated fleet's own credentials, loopback only
DEMO_V3 = SnmpCredentials(
    "3", user="monitor", auth_protocol="SHA-256", auth_key="demo-auth-key",
    priv_protocol="AES", priv_key="demo-priv-key",
)  # fmt: skip
DEMO_LOGIN = HttpLogin("admin", "demo-password")


@dataclass
class EmulatedRouter:
    """One router of the fleet: its life, how it is reached, and its inventory facts."""

    life: RouterLife
    profile: str
    organisation: str
    order_number: str
    snmp: SnmpCredentials | None = None
    http: HttpLogin | None = None
    variant: str = "e5576"  # HiLink firmware variant
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def protocol(self) -> Protocol:
        """SNMP or HiLink, from the profile."""
        return Protocol.HILINK if self.profile == "huawei-hilink" else Protocol.SNMP

    def config_entry(self) -> dict[str, Any]:
        """The router as a `routers:` entry of the config file (credentials included)."""
        entry: dict[str, Any] = {
            "id": self.life.router_id,
            "imei": self.life.imei,
            "serial": self.life.serial,
            "order_number": self.order_number,
            "organisation": self.organisation,
            "protocol": self.protocol.value,
            "host": self.host,
            "port": self.port,
            "profile": self.profile,
        }
        if self.life.iccid:
            entry["iccid"] = self.life.iccid
        if self.snmp is not None:
            entry["snmp"] = _snmp_entry(self.snmp)
        if self.http is not None:
            entry["http"] = {"username": self.http.username, "password": self.http.password}
        return entry


def parse_mix(text: str) -> dict[str, int]:
    """Parse `teltonika-rutos7=3,huawei-hilink=1` into weights; ValueError naming the problem."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in DEFAULT_MIX:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(DEFAULT_MIX)}")
        if not weight.isdigit():
            raise ValueError(f"{name}: weight must be a whole number, as in {name}=3")
        mix[name] = int(weight)
    if not mix or not sum(mix.values()):
        raise ValueError("the mix names no model with a weight above 0")
    return mix


def luhn_complete(body: str) -> str:
    """`body` (14 digits) with the Luhn check digit that makes it a valid IMEI."""
    for digit in "0123456789":
        if imei_problem(body + digit) is None:
            return body + digit
    raise ValueError(f"{body!r} is not 14 digits")


def plan_fleet(
    count: int,
    organisations: Sequence[str],
    *,
    now: float,
    mix: Mapping[str, int] = DEFAULT_MIX,
    seed: int = 1,
    prefix: str = "emu",
) -> list[EmulatedRouter]:
    """`count` routers spread over the mix and the organisations, the same for the same seed."""
    rng = random.Random(seed)
    placed = dict.fromkeys(mix, 0)
    routers = []
    for number in range(1, count + 1):
        # Sainte-Lague apportionment: the models interleave, so even a small fleet has them all.
        model = max(mix, key=lambda name: mix[name] / (2 * placed[name] + 1))
        placed[model] += 1
        router_id = f"{prefix}-{number:05d}"
        tac = _TAC.get(model, "354000")
        life = RouterLife.born(
            now,
            router_id=router_id,
            model=model,
            imei=luhn_complete(f"{tac}{seed % 100:02d}{number:06d}"),
            serial=f"{model[:3].upper()}{seed:02d}{number:07d}",
            iccid=f"894411{seed % 100:02d}{number:011d}",
            # Most pupils stay well under the cap; a few would reach 20GB within the month.
            received_rate=rng.choice([1_500.0, 4_000.0, 7_000.0, 12_000.0, 40_000.0]),
            sent_rate=rng.choice([300.0, 800.0, 1_500.0]),
            battery_drain_per_hour=rng.choice([0.0, 2.0, 5.0]),
            charging=rng.random() < 0.3,
            signal_rssi=rng.randint(-95, -55),
        )
        router = EmulatedRouter(
            life, model, organisations[(number - 1) % len(organisations)], f"ORD-EMU-{number:06d}"
        )
        if model == "huawei-hilink":
            router.variant = rng.choice(sorted(VARIANTS))
            router.http = DEMO_LOGIN
        else:
            router.snmp = DEMO_V3 if number % 5 == 0 else SnmpCredentials("2c", DEMO_COMMUNITY)
        routers.append(router)
    return routers


@dataclass
class EmulatedFleet:
    """Serves `EmulatedRouter`s on loopback; an async context manager."""

    clock: Clock = time.time
    routers: list[EmulatedRouter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.snmp = SnmpFleet(clock=self.clock)
        self.hilink = HilinkFleet(clock=self.clock)

    async def __aenter__(self) -> EmulatedFleet:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.snmp.close()
        await self.hilink.aclose()

    async def start(self, routers: Iterable[EmulatedRouter]) -> None:
        """Serve each router on its host and port (0: a free one, written back to the router)."""
        for router in routers:
            if router.protocol is Protocol.SNMP:
                assert router.snmp is not None
                router.host, router.port = await self.snmp.add(
                    router.life, model=router.profile, credentials=router.snmp,
                    host=router.host, port=router.port,
                )  # fmt: skip
            else:
                router.host, router.port = await self.hilink.add(
                    router.life, router.variant, router.http, router.host, router.port
                )
            self.routers.append(router)


async def animate(
    routers: Sequence[EmulatedRouter],
    stop: asyncio.Event,
    *,
    clock: Clock = time.time,
    seed: int = 1,
    every: float = 20.0,
) -> None:
    """Every `every` seconds, give a few routers a mishap and mend earlier ones, until `stop`."""
    rng = random.Random(seed)
    broken: dict[str, int] = {}  # router id -> ticks until mended
    while not stop.is_set():
        now = clock()
        for router in routers:
            life = router.life
            life.jitter_signal(rng)
            if life.router_id in broken:
                broken[life.router_id] -= 1
                if broken[life.router_id] <= 0:
                    del broken[life.router_id]
                    life.set_link(now, True)
                    life.insert_sim(now)
                    life.power(now, True)
                continue
            roll = rng.random()
            if roll < 0.004:
                life.reboot(now)
            elif roll < 0.010:
                life.set_link(now, False)
                broken[life.router_id] = rng.randint(1, 6)
            elif roll < 0.012:
                life.remove_sim(now)
                broken[life.router_id] = rng.randint(3, 20)
            elif roll < 0.014:
                life.power(now, False)
                broken[life.router_id] = rng.randint(3, 30)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def _snmp_entry(credentials: SnmpCredentials) -> dict[str, Any]:
    if credentials.version == "2c":
        return {"version": "2c", "community": credentials.community}
    entry: dict[str, Any] = {"version": 3, "user": credentials.user}
    if credentials.auth_protocol:
        entry.update(auth_protocol=credentials.auth_protocol, auth_key=credentials.auth_key)
    if credentials.priv_protocol:
        entry.update(priv_protocol=credentials.priv_protocol, priv_key=credentials.priv_key)
    return entry
