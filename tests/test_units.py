from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1d", 86400), (" 2m 5s ", 125)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "60", "s", "5 minutes", "1h30", "-5s", "5s5", "1.s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="must be a duration like 60s"):
        units.parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_round_trips(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    assert units.parse_duration(units.format_duration(value)) == value


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("20GB", 20 * 10**9),
        ("20GiB", 20 * 2**30),
        ("512 MB", 512 * 10**6),
        (1234, 1234),
        ("1.5GB", 1_500_000_000),
        ("7", 7),
        ("20gb", 20 * 10**9),
    ],
)
def test_parse_byte_size(value: str | int, size: int) -> None:
    assert units.parse_byte_size(value) == size


@pytest.mark.parametrize("value", ["20XB", "", "GB", "-1", -1, "0.5B"])
def test_parse_byte_size_rejects(value: str | int) -> None:
    with pytest.raises(ValueError, match="must"):
        units.parse_byte_size(value)


@pytest.mark.parametrize(
    ("text", "host", "port", "url"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("[::1]:9000", "::1", 9000, "http://[::1]:9000"),
        ("localhost:1", "localhost", 1, "http://localhost:1"),
    ],
)
def test_parse_host_port(text: str, host: str, port: int, url: str) -> None:
    address = units.parse_host_port(text)
    assert (address.host, address.port, address.url) == (host, port, url)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("8080", "host:port"),
        ("::1:8080", "brackets"),
        ("[nope]:80", "not an IPv6"),
        ("h:0", "1 to 65535"),
        ("h:65536", "1 to 65535"),
        ("h:http", "1 to 65535"),
    ],
)
def test_parse_host_port_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        units.parse_host_port(text)
