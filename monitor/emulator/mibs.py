"""Per-model MIB views of an emulated router, read from its `RouterLife` at a given time.

`build_view(model, options)` returns a shared `MibView`: the model's OIDs in lexicographic order,
each with a getter reading the value from a life at `now`. Facts come from
docs/router-interfaces.md and the public MIBs; values marked "invented" are plausible stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from monitor.emulator import ber
from monitor.emulator.life import RouterLife
from monitor.emulator.snmp_mib_base import (
    Entry,
    Getter,
    Interface,
    MibView,
    ViewOptions,
    const,
    idle_octets,
    integer,
    interfaces_group,
    lan_octets,
    signed32,
    system_group,
    text,
    today,
    wan_octets,
)

__all__ = ["MODELS", "MibView", "ViewOptions", "build_view", "signed32"]

TELTONIKA = (1, 3, 6, 1, 4, 1, 48690)
CISCO_3G = (1, 3, 6, 1, 4, 1, 9, 9, 661, 1)
CISCO_CELL_EXT = (1, 3, 6, 1, 4, 1, 9, 9, 817, 1, 1, 1, 1, 1)
MIKROTIK_LTE = (1, 3, 6, 1, 4, 1, 14988, 1, 1, 16, 1, 1)
CISCO_MODEM_INDEX = 13  # the modem's entPhysicalIndex: invented
MIKROTIK_LTE_IFINDEX = 2  # ether1 = 1, lte1 = 2: invented numbering
TELTONIKA_MODEM_INDEX = 1


def _signed(read: Callable[[RouterLife], int]) -> Getter:
    """A byte counter as Teltonika firmware sends it: Integer32, negative past 2^31."""
    return lambda life, now: (ber.INTEGER, signed32(read(life)))


def _received_today(life: RouterLife, now: float) -> tuple[int, ber.ValueData]:
    return ber.INTEGER, signed32(today(life, now, life.received_rate, life.month_received))


def _sent_today(life: RouterLife, now: float) -> tuple[int, ber.ValueData]:
    return ber.INTEGER, signed32(today(life, now, life.sent_rate, life.month_sent))


def _uptime_seconds(life: RouterLife, now: float) -> tuple[int, ber.ValueData]:
    return ber.INTEGER, min(int(life.uptime(now)), 2**31 - 1)


def _sim_text(life: RouterLife) -> str:
    return "inserted" if life.sim_present else "not inserted"


def _net_text(life: RouterLife) -> str:
    return "Registered, home" if life.sim_present else "Not registered"  # latter invented


def _connection_text(life: RouterLife) -> str:
    return "Connected" if life.connected else "Disconnected"  # latter invented


def teltonika_rutos7(options: ViewOptions) -> list[Entry]:
    """TELTONIKA-RUTX-MIB: device scalars and modemTable row 1."""
    entries = system_group("Teltonika RUTX11 RutOS", TELTONIKA)  # sysObjectID invented
    entries += [
        ((*TELTONIKA, 1, 1, 0), text(lambda life: life.serial)),
        ((*TELTONIKA, 1, 2, 0), const(ber.OCTET_STRING, b"RUTX11")),
        ((*TELTONIKA, 1, 3, 0), const(ber.OCTET_STRING, b"RUTX11000000")),  # invented code
        ((*TELTONIKA, 1, 6, 0), text(lambda life: f"RUTX_R_00.07.{life.firmware}")),
    ]
    columns: dict[int, Getter] = {
        1: const(ber.INTEGER, TELTONIKA_MODEM_INDEX),
        2: const(ber.OCTET_STRING, b"Internal modem"),  # invented
        3: text(lambda life: life.imei),
        4: const(ber.OCTET_STRING, b"RG501Q-EU"),  # invented
        8: text(lambda life: life.imsi if life.sim_present else ""),
        9: text(_sim_text),
        10: text(lambda life: "READY" if life.sim_present else ""),
        11: text(_net_text),
        12: integer(lambda life: life.signal_rssi),
        13: text(lambda life: "EE" if life.sim_present else ""),  # invented operator
        15: text(_connection_text),
        16: text(lambda life: "LTE" if life.sim_present else ""),
        17: const(ber.INTEGER, 420),  # 42.0 C: invented
        19: integer(lambda life: round(life.signal_sinr)),
        20: integer(lambda life: life.signal_rsrp),
        21: integer(lambda life: life.signal_rsrq),
        22: _signed(lambda life: life.sent_since_boot),
        23: _signed(lambda life: life.received_since_boot),
        25: _sent_today,
        26: _received_today,
    }
    if not options.short_modem_table:
        columns[27] = text(lambda life: (life.iccid or "") if life.sim_present else "")
        columns[30] = _signed(lambda life: life.month_sent)
        columns[31] = _signed(lambda life: life.month_received)
    table = (*TELTONIKA, 2, 2, 1)
    entries += [((*table, col, TELTONIKA_MODEM_INDEX), get) for col, get in columns.items()]
    return entries


def teltonika_legacy(options: ViewOptions) -> list[Entry]:
    """The pre-RutOS 7 Teltonika MIB: scalars .2.N.0, Integer32 traffic, no month counters."""
    entries = system_group("Teltonika RUT955", TELTONIKA)  # sysObjectID invented
    scalars: dict[int, Getter] = {
        1: text(_sim_text),
        3: text(_net_text),
        4: integer(lambda life: life.signal_rssi),
        7: text(_connection_text),
        10: _received_today,
        11: _sent_today,
        16: _uptime_seconds,  # type invented: seconds as INTEGER
        # About 2 GiB maximum: the counters are Integer32 and turn negative past 2^31.
        19: _signed(lambda life: life.sent_since_boot),
        20: _signed(lambda life: life.received_since_boot),
        22: integer(lambda life: round(life.signal_sinr)),
        23: integer(lambda life: life.signal_rsrp),
        24: integer(lambda life: life.signal_rsrq),
    }
    return entries + [((*TELTONIKA, 2, n, 0), get) for n, get in scalars.items()]


def _counter64(read: Callable[[RouterLife], int]) -> Getter:
    return lambda life, now: (ber.COUNTER64, read(life) & 0xFFFF_FFFF_FFFF_FFFF)


def _cisco_sim_status(life: RouterLife) -> int:
    if life.sim_present:
        return 2  # ok
    return 4 if life.iccid else 3  # removed (one was in), notInserted


def cisco_cellular(options: ViewOptions) -> list[Entry]:
    """CISCO-WAN-3G-MIB and CISCO-WAN-CELL-EXT-MIB for one modem."""
    i = CISCO_MODEM_INDEX
    entries = system_group("Cisco IOS XE Software, IR1101", (1, 3, 6, 1, 4, 1, 9, 1, 2593))
    entries += [  # sysObjectID above invented
        ((*CISCO_3G, 1, 1, 1, 8, i), integer(lambda life: 5 if life.connected else 6)),
        ((*CISCO_3G, 3, 1, 1, 2, i), text(lambda life: life.imei)),
        ((*CISCO_3G, 3, 1, 1, 3, i), text(lambda life: (life.iccid or "") * life.sim_present)),
        ((*CISCO_3G, 3, 1, 1, 6, i), const(ber.INTEGER, 3)),  # onLine
        ((*CISCO_3G, 3, 4, 1, 1, 1, i), integer(lambda life: life.signal_rssi)),
        ((*CISCO_3G, 3, 5, 1, 1, 2, i), integer(_cisco_sim_status)),
        ((*CISCO_CELL_EXT, 1, i), integer(lambda life: life.signal_rsrp)),
        ((*CISCO_CELL_EXT, 2, i), integer(lambda life: life.signal_rsrq)),
        ((*CISCO_CELL_EXT, 4, i), integer(lambda life: round(life.signal_sinr * 10))),
    ]
    if not options.without_byte_counters:
        entries += [
            ((*CISCO_3G, 3, 2, 1, 19, i), _counter64(lambda life: life.sent_since_boot)),
            ((*CISCO_3G, 3, 2, 1, 20, i), _counter64(lambda life: life.received_since_boot)),
        ]
    return entries


def mikrotik_lte(options: ViewOptions) -> list[Entry]:
    """MikroTik's LTE table for lte1 plus IF-MIB for ether1 and lte1."""
    entries = system_group("RouterOS RB912R-2nD-LTm", (1, 3, 6, 1, 4, 1, 14988, 1))
    i = MIKROTIK_LTE_IFINDEX
    entries += [
        ((*MIKROTIK_LTE, 2, i), integer(lambda life: life.signal_rssi)),
        ((*MIKROTIK_LTE, 3, i), integer(lambda life: life.signal_rsrq)),
        ((*MIKROTIK_LTE, 4, i), integer(lambda life: life.signal_rsrp)),
        ((*MIKROTIK_LTE, 7, i), integer(lambda life: round(life.signal_sinr))),
        ((*MIKROTIK_LTE, 11, i), text(lambda life: life.imei)),
        ((*MIKROTIK_LTE, 12, i), text(lambda life: life.imsi if life.sim_present else "")),
        ((*MIKROTIK_LTE, 13, i), text(lambda life: (life.iccid or "") * life.sim_present)),
    ]
    return entries + interfaces_group(
        [
            Interface(1, "ether1", 6, 1500, lan_octets),
            Interface(i, "lte1", 1, 1500, wan_octets, wan=True),  # ifType invented
        ]
    )


def generic_if_mib(options: ViewOptions) -> list[Entry]:
    """A Linux box with net-snmp: lo, eth0 and the modem's wwan0."""
    entries = system_group("Linux emulated-router", (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10))
    return entries + interfaces_group(
        [
            Interface(1, "lo", 24, 65536, idle_octets),
            Interface(2, "eth0", 6, 1500, lan_octets),
            Interface(3, "wwan0", 1, 1500, wan_octets, wan=True),  # ifType invented
        ]
    )


_BUILDERS: dict[str, Callable[[ViewOptions], list[Entry]]] = {
    "teltonika-rutos7": teltonika_rutos7,
    "teltonika-legacy": teltonika_legacy,
    "cisco-cellular": cisco_cellular,
    "mikrotik-lte": mikrotik_lte,
    "if-mib": generic_if_mib,
}
MODELS = tuple(_BUILDERS)
DEFAULT_OPTIONS = ViewOptions()


@lru_cache(maxsize=64)
def build_view(model: str, options: ViewOptions = DEFAULT_OPTIONS) -> MibView:
    """The view of `model` (shared by every router of it); ValueError for an unknown model."""
    if model not in _BUILDERS:
        raise ValueError(f"unknown emulated model {model!r}; known: {', '.join(MODELS)}")
    return MibView(_BUILDERS[model](options))
