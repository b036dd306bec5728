"""The building blocks of the emulated MIB views: `MibView`, value getters, standard groups.

A `MibView` is the sorted list of a model's OIDs, each with a getter that reads the value from a
life at `now`; the OIDs depend only on the model and its options, so one view serves every router
of that model. Facts come from docs/router-interfaces.md and public MIBs; values marked
"invented" in the comments are plausible stand-ins with no recorded source.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.emulator import ber
from monitor.emulator.life import RouterLife

Getter = Callable[[RouterLife, float], tuple[int, ber.ValueData]]
Entry = tuple[ber.Oid, Getter]

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SNMP_ENGINE_TIME = (1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0)
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """Firmware variants of a model."""

    short_modem_table: bool = False  # Teltonika firmware without modemTable columns 27-31
    without_byte_counters: bool = False  # Cisco devices without c3gGsmTotalByte* columns


class MibView:
    """A model's OIDs in lexicographic order, each read from a life on demand."""

    def __init__(self, entries: list[Entry]) -> None:
        entries = sorted(entries, key=lambda entry: entry[0])
        self.oids = [oid for oid, _ in entries]
        self.getters = [getter for _, getter in entries]
        if len(set(self.oids)) != len(self.oids):
            raise ValueError("duplicate OID in a MIB view")

    def __len__(self) -> int:
        return len(self.oids)

    def at(self, index: int, life: RouterLife, now: float) -> ber.VarBind:
        """The varbind at `index` (0-based, in OID order)."""
        tag, data = self.getters[index](life, now)
        return self.oids[index], tag, data

    def get(self, oid: ber.Oid, life: RouterLife, now: float) -> ber.VarBind:
        """The value of `oid`, or noSuchInstance/noSuchObject as a v2c agent answers."""
        index = bisect_left(self.oids, oid)
        if index < len(self.oids) and self.oids[index] == oid:
            return self.at(index, life, now)
        # An existing object (the OID minus its instance part) means only the instance is missing.
        parent, size = oid[:-1], len(oid) - 1
        neighbours = self.oids[max(index - 1, 0) : index + 1]
        exists = any(candidate[:size] == parent for candidate in neighbours)
        return oid, ber.NO_SUCH_INSTANCE if exists else ber.NO_SUCH_OBJECT, None

    def next_index(self, oid: ber.Oid) -> int:
        """The index of the first OID strictly after `oid` (== len(self) at the end)."""
        return bisect_right(self.oids, oid)

    def snapshot(self, life: RouterLife, now: float) -> list[ber.VarBind]:
        """Every varbind of the view, in order."""
        return [self.at(index, life, now) for index in range(len(self.oids))]


# --- value helpers -------------------------------------------------------------------------


def signed32(n: int) -> int:
    """`n` modulo 2^32 as a signed Integer32, as Teltonika firmware puts byte counters."""
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def text(read: Callable[[RouterLife], str]) -> Getter:
    """A getter of an OCTET STRING read from the life."""
    return lambda life, now: (ber.OCTET_STRING, read(life).encode())


def integer(read: Callable[[RouterLife], int]) -> Getter:
    """A getter of an INTEGER read from the life."""
    return lambda life, now: (ber.INTEGER, read(life))


def const(tag: int, data: ber.ValueData) -> Getter:
    """A getter of a fixed value."""
    return lambda life, now: (tag, data)


def today(life: RouterLife, now: float, rate: float, month: int) -> int:
    """Bytes since local midnight: life keeps no daily total, so estimate from the rate."""
    local = datetime.fromtimestamp(now, UTC).astimezone(life.zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    since = max(midnight, life.boot_time, life.month_cleared_at)
    return min(month, int(max(0.0, now - since) * rate)) if life.connected else 0


def _uptime_ticks(life: RouterLife, now: float) -> tuple[int, ber.ValueData]:
    return ber.TIMETICKS, int(life.uptime(now) * 100) & 0xFFFFFFFF


def _engine_time(life: RouterLife, now: float) -> tuple[int, ber.ValueData]:
    return ber.INTEGER, min(int(life.uptime(now)), 2**31 - 1)


def system_group(descr: str, object_id: ber.Oid) -> list[Entry]:
    """sysDescr .. sysLocation and snmpEngineTime."""
    return [
        ((*SYSTEM, 1, 0), text(lambda life: f"{descr} {life.firmware}")),
        ((*SYSTEM, 2, 0), const(ber.OBJECT_IDENTIFIER, object_id)),
        ((*SYSTEM, 3, 0), _uptime_ticks),
        ((*SYSTEM, 4, 0), const(ber.OCTET_STRING, b"support@example.invalid")),  # invented
        ((*SYSTEM, 5, 0), text(lambda life: life.router_id)),
        ((*SYSTEM, 6, 0), const(ber.OCTET_STRING, b"")),
        (SNMP_ENGINE_TIME, _engine_time),
    ]


@dataclass(frozen=True, slots=True)
class Interface:
    """One ifTable row; `octets` gives (in, out) octets since boot."""

    index: int
    name: str
    if_type: int
    mtu: int
    octets: Callable[[RouterLife], tuple[int, int]]
    wan: bool = False


def _oper_status(interface: Interface) -> Getter:
    return lambda life, now: (ber.INTEGER, 1 if not interface.wan or life.connected else 2)


def _octets(interface: Interface, direction: int, mask: int, tag: int) -> Getter:
    return lambda life, now: (tag, interface.octets(life)[direction] & mask)


def interfaces_group(interfaces: list[Interface]) -> list[Entry]:
    """ifNumber, ifTable (Counter32 octets) and ifXTable (ifName, Counter64 octets)."""
    entries: list[Entry] = [((1, 3, 6, 1, 2, 1, 2, 1, 0), const(ber.INTEGER, len(interfaces)))]
    for row in interfaces:
        i, name = row.index, row.name.encode()
        entries += [
            ((*IF_TABLE, 1, i), const(ber.INTEGER, i)),
            ((*IF_TABLE, 2, i), const(ber.OCTET_STRING, name)),
            ((*IF_TABLE, 3, i), const(ber.INTEGER, row.if_type)),
            ((*IF_TABLE, 4, i), const(ber.INTEGER, row.mtu)),
            ((*IF_TABLE, 7, i), const(ber.INTEGER, 1)),
            ((*IF_TABLE, 8, i), _oper_status(row)),
            ((*IF_TABLE, 10, i), _octets(row, 0, 0xFFFFFFFF, ber.COUNTER32)),
            ((*IF_TABLE, 16, i), _octets(row, 1, 0xFFFFFFFF, ber.COUNTER32)),
            ((*IF_X_TABLE, 1, i), const(ber.OCTET_STRING, name)),
            ((*IF_X_TABLE, 6, i), _octets(row, 0, 2**64 - 1, ber.COUNTER64)),
            ((*IF_X_TABLE, 10, i), _octets(row, 1, 2**64 - 1, ber.COUNTER64)),
        ]
    return entries


def wan_octets(life: RouterLife) -> tuple[int, int]:
    """The mobile interface: in = received (download), out = sent."""
    return life.received_since_boot, life.sent_since_boot


def lan_octets(life: RouterLife) -> tuple[int, int]:
    """The LAN interface."""
    # The LAN side mirrors the WAN: what the router downloads it sends on to the clients.
    return life.sent_since_boot, life.received_since_boot


def idle_octets(life: RouterLife) -> tuple[int, int]:
    """An interface without traffic (loopback)."""
    return 0, 0
