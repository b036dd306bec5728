"""HiLink reply parsing: pure functions over replies as the firmware sends them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.collectors.hilink_parse import (
    HilinkErrorReply,
    MalformedReply,
    build_sample,
    parse_count,
    parse_csrf_meta,
    parse_level,
    parse_reply,
    parse_ses_tok_info,
)
from monitor.model import Counter, CounterType, LinkState, SimState, UptimeClock
from monitor.profiles import load_profiles
from monitor.profiles_hilink import HilinkProfile

FIXTURES = Path(__file__).parent / "fixtures" / "hilink"
PROFILES = Path(__file__).parent.parent / "config" / "profiles"
AT = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def profile() -> HilinkProfile:
    loaded = load_profiles(PROFILES)["huawei-hilink"]
    assert isinstance(loaded, HilinkProfile)
    return loaded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-98dBm", -98.0),
        (">=-51dBm", -51.0),
        ("<=-113dBm", -113.0),
        ("-11dB", -11.0),
        ("-11.5dB", -11.5),
        ("18dB", 18.0),
        ("+3dB", 3.0),
        ("-7", -7.0),
        (" -84dBm ", -84.0),
        ("", None),
        ("--", None),
        ("Unknown", None),
        (None, None),
    ],
)
def test_parse_level(text: str | None, expected: float | None) -> None:
    assert parse_level(text) == expected


@pytest.mark.parametrize("text", ["dBm", "-98dBmx", "abc", "1e3dB", "-9 8dBm"])
def test_parse_level_rejects_garbage(text: str) -> None:
    with pytest.raises(MalformedReply):
        parse_level(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("94489280512", 94489280512), ("", None), (None, None), (" 75 ", 75)],
)
def test_parse_count(text: str | None, expected: int | None) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["-1", "1.5", "12kB", "x"])
def test_parse_count_rejects_non_counts(text: str) -> None:
    with pytest.raises(MalformedReply):
        parse_count(text)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("error-100002.xml", 100002),
        ("error-100003.xml", 100003),
        ("error-100004.xml", 100004),
        ("error-108006.xml", 108006),
        ("error-108007.xml", 108007),
        ("error-125002.xml", 125002),
        ("error-125003.xml", 125003),
    ],
)
def test_error_bodies_raise_their_code(name: str, code: int) -> None:
    with pytest.raises(HilinkErrorReply) as caught:
        parse_reply(fixture(name))
    assert caught.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        fixture("hostile-bomb.xml"),
        fixture("hostile-external.xml"),
        fixture("hostile-doctype.xml"),
        b"\x00\xff\xfegarbage",
        b"<response><unclosed></response>",
        b"",
        b"<html><body>Not Found</body></html>",
        b"<error><code>abc</code></error>",
    ],
    ids=["bomb", "external", "doctype", "binary", "unclosed", "empty", "html", "error-no-code"],
)
def test_hostile_or_garbage_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedReply):
        parse_reply(body)


def test_entities_in_software_version_are_decoded_not_expanded() -> None:
    elements = parse_reply(fixture("b535-information.xml"))
    assert elements["SoftwareVersion"] == "11.0.2.2(H196SP6C983) & patch<1>"
    assert elements["MacAddress2"] is None


def test_login_ok_reply_has_no_elements() -> None:
    assert parse_reply(fixture("login-ok.xml")) == {}


def test_token_sources() -> None:
    token = parse_reply(fixture("token.xml"))["token"]
    assert token is not None
    assert token.startswith("Pl3f")
    session, tok = parse_ses_tok_info(parse_reply(fixture("sestokinfo.xml")))
    assert session.startswith("q5Lk")
    assert "=" not in session
    assert tok == "c9Jm2Wq7Kx4Rt1Yp8Nv3Lb6Hd0Gf5Sa"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<head><meta name="csrf_token" content="abc123"/>', "abc123"),
        ("<meta name='csrf_token' content='x1'><meta name='csrf_token' content='x2'>", "x1"),
        ("<head><title>HiLink</title></head>", None),
    ],
)
def test_parse_csrf_meta(html: str, expected: str | None) -> None:
    assert parse_csrf_meta(html) == expected


def replies(**names: str) -> dict[str, dict[str, str | None]]:
    return {endpoint: parse_reply(fixture(name)) for endpoint, name in names.items()}


CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "e5576-pocket-router",
        {
            "status": "e5576-status.xml",
            "pin": "pin-status-ready.xml",
            "signal": "e5576-signal.xml",
            "traffic": "traffic-statistics.xml",
            "month": "month-statistics.xml",
            "information": "e5576-information.xml",
        },
        {
            "sim": SimState.READY,
            "link": LinkState.CONNECTED,
            "network_type": "LTE",
            "signal": (-51.0, -84.0, -7.0, 18.0),
            "battery": (75, False),
            "uptime": 86451.0,
            "identity": ("867098031000017", "8944110000000000017", "E5576-320"),
            "counters": (94489280512, 8589934592),
            "month": (3184732112, 291837421, "2024-3-1"),
        },
    ),
    (
        "e5577-charging-hspa-no-pin-endpoint",
        {"status": "e5577-status-charging.xml", "traffic": "traffic-statistics.xml"},
        {
            "sim": SimState.READY,
            "link": LinkState.CONNECTING,
            "network_type": "HSPA+",
            "signal": (None, None, None, None),
            "battery": (48, True),
            "uptime": None,
            "identity": (None, None, None),
            "counters": (94489280512, 8589934592),
            "month": (None, None, None),
        },
    ),
    (
        "e5576-no-sim-low-battery",
        {"status": "e5576-status-nosim.xml", "pin": "pin-status-nosim.xml"},
        {
            "sim": SimState.ABSENT,
            "link": LinkState.DISCONNECTED,
            "network_type": None,
            "battery": (5, False),
        },
    ),
    (
        "e3372-dongle-without-battery-or-uptime",
        {
            "status": "e3372-status.xml",
            "pin": "pin-status-puk.xml",
            "signal": "e3372-signal.xml",
            "information": "e3372-information.xml",
        },
        {
            "sim": SimState.PUK_LOCKED,
            "link": LinkState.CONNECTED,
            "network_type": "LTE",
            "signal": (-69.0, -98.0, -11.5, -2.0),
            "battery": (None, None),
            "uptime": None,
            "identity": ("866530030000458", None, "E3372h-320"),
        },
    ),
    (
        "b535-newer-month-statistics",
        {
            "status": "e3372-status.xml",
            "pin": "pin-status-pin.xml",
            "month": "b535-month-statistics.xml",
            "information": "b535-information.xml",
        },
        {
            "sim": SimState.PIN_LOCKED,
            "uptime": 1209600.0,
            "identity": ("863725040123454", "8944300000000000029", "B535-232"),
            "month": (21474836480, 1073741824, "2024-11-15"),
        },
    ),
]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_build_sample(
    profile: HilinkProfile, files: dict[str, str], expected: dict[str, Any]
) -> None:
    sample = build_sample(profile, "r1", AT, replies(**files))
    assert (sample.router_id, sample.at) == ("r1", AT)
    for key, value in expected.items():
        if key == "signal":
            signal = sample.signal
            assert (signal.rssi_dbm, signal.rsrp_dbm, signal.rsrq_db, signal.sinr_db) == value
        elif key == "battery":
            assert (sample.battery_percent, sample.charging) == value
        elif key == "uptime":
            assert sample.uptime_seconds == value
            assert sample.uptime_clock == (None if value is None else UptimeClock.DEVICE)
        elif key == "identity":
            identity = sample.identity
            assert (identity.imei, identity.iccid, identity.model) == value
        elif key == "counters":
            assert sample.traffic.received == Counter(value[0], CounterType.DEVICE)
            assert sample.traffic.sent == Counter(value[1], CounterType.DEVICE)
        elif key == "month":
            traffic = sample.traffic
            assert (traffic.month_received, traffic.month_sent, traffic.month_cleared) == value
        else:
            assert getattr(sample, key) == value


def test_sim_falls_back_to_monitoring_status_when_pin_status_is_missing(
    profile: HilinkProfile,
) -> None:
    sample = build_sample(profile, "r1", AT, replies(status="e5576-status-nosim.xml"))
    assert sample.sim is SimState.ABSENT


def test_unknown_codes_fall_through_to_unknown(profile: HilinkProfile) -> None:
    status = {"ConnectionStatus": "999", "SimStatus": "77", "CurrentNetworkTypeEx": "4242"}
    sample = build_sample(profile, "r1", AT, {"status": status})
    assert (sample.sim, sample.link, sample.network_type) == (
        SimState.UNKNOWN,
        LinkState.UNKNOWN,
        None,
    )


def test_garbage_value_is_a_malformed_reply(profile: HilinkProfile) -> None:
    with pytest.raises(MalformedReply):
        build_sample(profile, "r1", AT, {"traffic": {"TotalDownload": "lots"}})


BASE: dict[str, Any] = {
    "name": "x",
    "protocol": "hilink",
    "endpoints": {"status": {"path": "/api/monitoring/status"}},
    "fields": {
        "link": [{"endpoint": "status", "element": "ConnectionStatus", "map": {901: "connected"}}]
    },
}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"endpoints": {"s": {"path": "/api/device/control"}}}, "path"),
        ({"endpoints": {"s": {"path": "/api/monitoring/status/../../device/control"}}}, "path"),
        (
            {"endpoints": {"status": {"path": "/api/monitoring/status", "optional": True}}},
            "optional",
        ),
        (
            {"fields": {"link": [{"endpoint": "nope", "element": "ConnectionStatus", "map": {}}]}},
            "nope",
        ),
        (
            {"fields": {"link": [{"endpoint": "status", "element": "X", "map": {"1": "up"}}]}},
            "one of",
        ),
        ({"fields": {"link": [{"endpoint": "status", "element": "X"}]}}, "code table"),
        (
            {"fields": {"charging": [{"endpoint": "status", "element": "B", "map": {"1": "yes"}}]}},
            "true",
        ),
        ({"fields": {"speed": [{"endpoint": "status", "element": "X"}]}}, "speed"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_profile_validation_rejects(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HilinkProfile.model_validate({**BASE, **change})
    assert needle in str(caught.value)


def test_profile_codes_may_be_unquoted_yaml_integers() -> None:
    profile = HilinkProfile.model_validate(BASE)
    assert profile.sources("link")[0].map == {"901": "connected"}
