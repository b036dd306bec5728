"""Turning recorded SNMP replies into Samples: the pure half of the SNMP collector."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.collectors.convert import (
    Varbind,
    as_counter,
    as_number,
    as_state,
    as_text,
    build_sample,
    number_from_text,
    to_unsigned32,
)
from monitor.collectors.snmp import matched_cells, plan
from monitor.model import Counter, CounterType, LinkState, SimState, UptimeClock
from monitor.profiles import FieldSpec, SnmpProfile, load_profiles

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
COUNTER64, INTEGER32 = CounterType.COUNTER64, CounterType.INTEGER32
AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def profiles() -> dict[str, SnmpProfile]:
    """The shipped SNMP profiles."""
    loaded = load_profiles(ROOT / "config" / "profiles")
    return {name: p for name, p in loaded.items() if isinstance(p, SnmpProfile)}


def recorded(model: str, name: str) -> list[Varbind]:
    """A recorded reply: OctetString values are stored as text."""
    data = json.loads((FIXTURES / model / name).read_text(encoding="utf-8"))
    return [
        Varbind(oid, kind, value.encode() if isinstance(value, str) else value)
        for oid, kind, value in data["varbinds"]
    ]


def test_teltonika_rutos7_negative_integer32_counters_read_unsigned(profiles):
    sample = build_sample(
        profiles["teltonika-rutos7"],
        recorded("teltonika-rutos7", "rut955-negative-counters.json"),
        "rut-1",
        AT,
    )
    assert sample.traffic.sent == Counter(2459565713, CounterType.INTEGER32)
    assert sample.traffic.received == Counter(1234567890, CounterType.INTEGER32)
    assert sample.traffic.month_sent == 2294967296
    assert sample.traffic.month_received == 987654321
    assert (sample.sim, sample.link, sample.network_type) == (
        SimState.READY,
        LinkState.CONNECTED,
        "LTE",
    )
    assert (sample.signal.rssi_dbm, sample.signal.rsrp_dbm) == (-67, -95)
    assert (sample.signal.rsrq_db, sample.signal.sinr_db) == (-10, 12)
    assert sample.identity.imei == "867098031000017"
    assert sample.identity.iccid == "8944100000000000017"
    assert sample.identity.imsi == "234150123456789"
    assert sample.identity.serial == "1110843519"
    assert sample.identity.model == "RUT955H7V3B0"
    assert sample.identity.firmware == "RUT9_R_00.07.06.10"
    assert sample.uptime_seconds == 86400.0
    assert sample.uptime_clock is UptimeClock.SYS_UPTIME
    assert (sample.router_id, sample.at) == ("rut-1", AT)


def test_teltonika_rutos7_without_columns_27_to_31(profiles):
    sample = build_sample(
        profiles["teltonika-rutos7"],
        recorded("teltonika-rutos7", "rutx11-no-iccid-columns.json"),
        "rut-2",
        AT,
    )
    assert sample.identity.iccid is None
    assert sample.identity.imsi is None  # empty string: not reported
    assert sample.identity.firmware is None  # noSuchObject
    assert (sample.traffic.month_sent, sample.traffic.month_received) == (None, None)
    assert sample.traffic.received == Counter(21474836480, CounterType.COUNTER64)
    assert (sample.sim, sample.link) == (SimState.ABSENT, LinkState.DISCONNECTED)
    assert sample.uptime_seconds == pytest.approx(123.45)


def test_teltonika_legacy_scalars(profiles):
    sample = build_sample(
        profiles["teltonika-legacy"], recorded("teltonika-legacy", "rut240-legacy.json"), "r", AT
    )
    assert sample.traffic.sent == Counter(4294967295, CounterType.INTEGER32)
    assert sample.traffic.received == Counter(2147483647, CounterType.INTEGER32)
    assert (sample.sim, sample.link) == (SimState.READY, LinkState.CONNECTED)
    assert (sample.uptime_seconds, sample.uptime_clock) == (93784, UptimeClock.DEVICE)
    assert sample.signal.rsrp_dbm == -101


def test_cisco_integer_states_tenths_and_counter64(profiles):
    sample = build_sample(
        profiles["cisco-cellular"], recorded("cisco-cellular", "ir1101.json"), "c", AT
    )
    assert (sample.sim, sample.link) == (SimState.READY, LinkState.CONNECTED)
    assert sample.signal.sinr_db == pytest.approx(13.7)
    assert (sample.signal.rssi_dbm, sample.signal.rsrp_dbm, sample.signal.rsrq_db) == (
        -73,
        -104,
        -11,
    )
    assert sample.traffic.sent == Counter(2**64 - 1, CounterType.COUNTER64)
    assert sample.identity.iccid == "8944200000000000025"
    assert sample.uptime_seconds == pytest.approx(42949672.95)


def test_cisco_without_byte_counters_and_pin_locked(profiles):
    sample = build_sample(
        profiles["cisco-cellular"],
        recorded("cisco-cellular", "ir809-no-byte-counters.json"),
        "c",
        AT,
    )
    assert (sample.traffic.sent, sample.traffic.received) == (None, None)
    assert (sample.sim, sample.link) == (SimState.PIN_LOCKED, LinkState.DISCONNECTED)
    assert sample.identity.iccid is None
    assert sample.signal.sinr_db is None  # a string where a number belongs


def test_mikrotik_lte_matches_the_lte_interface(profiles):
    sample = build_sample(
        profiles["mikrotik-lte"], recorded("mikrotik-lte", "hap-ac3-lte.json"), "m", AT
    )
    assert sample.traffic.received == Counter(9876543210, CounterType.COUNTER64)
    assert sample.traffic.sent == Counter(123456789, CounterType.COUNTER64)
    assert sample.link is LinkState.CONNECTED
    assert sample.identity.imei == "862061040000011"
    assert sample.signal.sinr_db == 15


def test_if_mib_falls_back_to_32bit_counters(profiles):
    sample = build_sample(profiles["if-mib"], recorded("if-mib", "linux-wwan0-32bit.json"), "g", AT)
    assert sample.traffic.received == Counter(4294967295, CounterType.COUNTER32)
    assert sample.traffic.sent == Counter(1000, CounterType.COUNTER32)
    assert sample.link is LinkState.DISCONNECTED


def test_if_mib_with_no_matching_interface_reports_no_traffic(profiles):
    varbinds = [vb for vb in recorded("if-mib", "linux-wwan0-32bit.json") if vb.value != b"wwan0"]
    sample = build_sample(profiles["if-mib"], varbinds, "g", AT)
    assert (sample.traffic.received, sample.link) == (None, LinkState.UNKNOWN)


def test_plan_asks_only_for_what_the_profile_needs(profiles):
    steps = plan(profiles["if-mib"])
    assert steps.get == ("1.3.6.1.2.1.1.3.0",)
    assert [w.column for w in steps.walk] == ["1.3.6.1.2.1.2.2.1.2"]
    assert steps.matched
    varbinds = {vb.oid: vb for vb in recorded("if-mib", "linux-wwan0-32bit.json")}
    assert matched_cells(profiles["if-mib"], varbinds) == [
        "1.3.6.1.2.1.2.2.1.8.3",
        "1.3.6.1.2.1.31.1.1.1.6.3",
        "1.3.6.1.2.1.2.2.1.10.3",
        "1.3.6.1.2.1.31.1.1.1.10.3",
        "1.3.6.1.2.1.2.2.1.16.3",
    ]
    teltonika = plan(profiles["teltonika-rutos7"])
    assert all(w.rows == 1 for w in teltonika.walk)
    assert not teltonika.matched
    assert len(teltonika.get) + len(teltonika.walk) == len(profiles["teltonika-rutos7"].fields)


@pytest.mark.parametrize(
    ("signed", "unsigned"),
    [(-1835401583, 2459565713), (-1, 4294967295), (0, 0), (2147483647, 2147483647)],
)
def test_to_unsigned32(signed, unsigned):
    assert to_unsigned32(signed) == unsigned


@pytest.mark.parametrize(
    ("text", "number"),
    [("-98dBm", -98.0), (">=-51dBm", -51.0), ("-11dB", -11.0), ("12.5 dB", 12.5), ("42", 42.0),
     ("<-120dBm", -120.0), ("", None), ("N/A", None), ("dBm", None), ("1.2.3", None)],
)  # fmt: skip
def test_number_from_text(text, number):
    assert number_from_text(text) == number


STATES = FieldSpec(
    oid="1.3.6.1.4.1.1", map={"inserted": "ready", "connected": "connected", 5: "connected"}
)


@pytest.mark.parametrize(
    ("varbind", "state"),
    [
        (Varbind("x", "OctetString", b"inserted"), "ready"),
        (Varbind("x", "OctetString", b"  INSERTED "), "ready"),
        (Varbind("x", "OctetString", b"Connected"), "connected"),
        (Varbind("x", "Integer32", 5), "connected"),
        (Varbind("x", "OctetString", b"5"), "connected"),
        (Varbind("x", "Integer32", 6), None),
        (Varbind("x", "OctetString", b"sideways"), None),
        (Varbind("x", "noSuchInstance"), None),
        (Varbind("x", "OctetString", b"\xff\xfe"), None),
    ],
)
def test_as_state_unknown_is_never_an_error(varbind, state):
    assert as_state(varbind, STATES) == state


@pytest.mark.parametrize(
    ("spec", "varbind", "number"),
    [
        (FieldSpec(oid="1.3", scale=0.1), Varbind("x", "Integer32", 137), 13.7),
        (FieldSpec(oid="1.3", unavailable=(-9999,)), Varbind("x", "Integer32", -9999), None),
        (FieldSpec(oid="1.3", unavailable=(-9999,)), Varbind("x", "OctetString", b"-9999"), None),
        (FieldSpec(oid="1.3"), Varbind("x", "OctetString", b"-98dBm"), -98.0),
        (FieldSpec(oid="1.3"), Varbind("x", "TimeTicks", 150), 1.5),
        (FieldSpec(oid="1.3", unsigned32=True), Varbind("x", "Integer32", -1), 4294967295),
        (FieldSpec(oid="1.3"), Varbind("x", "endOfMibView"), None),
        (FieldSpec(oid="1.3"), Varbind("x", "ObjectIdentifier", b"1.3.6"), None),
        (FieldSpec(oid="1.3"), None, None),
    ],
)
def test_as_number(spec, varbind, number):
    assert as_number(varbind, spec) == (pytest.approx(number) if number is not None else None)


@pytest.mark.parametrize(
    ("spec", "varbind", "counter"),
    [
        (FieldSpec(oid="1.3"), Varbind("x", "Counter32", 7), Counter(7, CounterType.COUNTER32)),
        (FieldSpec(oid="1.3"), Varbind("x", "Counter64", 2**40), Counter(2**40, COUNTER64)),
        (FieldSpec(oid="1.3"), Varbind("x", "Integer32", -2), Counter(2**32 - 2, INTEGER32)),
        (
            FieldSpec(oid="1.3", counter="integer32"),
            Varbind("x", "Counter64", 5),
            Counter(5, INTEGER32),
        ),
        (FieldSpec(oid="1.3"), Varbind("x", "OctetString", b"12"), None),
        (FieldSpec(oid="1.3"), Varbind("x", "noSuchObject"), None),
    ],
)
def test_as_counter(spec, varbind, counter):
    assert as_counter(varbind, spec) == counter


@pytest.mark.parametrize(
    ("varbind", "text"),
    [
        (Varbind("x", "OctetString", b" 867098031000017 "), "867098031000017"),
        (Varbind("x", "OctetString", b""), None),
        (Varbind("x", "Integer32", 12), "12"),
        (Varbind("x", "noSuchObject"), None),
    ],
)
def test_as_text(varbind, text):
    assert as_text(varbind) == text
