"""Parsing of the human units operators write in configuration: durations, byte sizes, addresses."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `5m`, `1h30m`, `250ms` or `1d` into a timedelta; ValueError otherwise."""
    compact = text.strip().replace(" ", "")
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        raise ValueError("must be a duration like 60s, 5m or 1h30m")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact way of writing `value` in the units `parse_duration` reads."""
    millis = round(value.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_byte_size(value: str | int) -> int:
    """Parse `20GB` (10^9), `20GiB` (2^30), `512MB` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("must be a size like 20GB or a number of bytes")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _SIZE_RE.fullmatch(value.strip())
    if not match:
        raise ValueError("must be a size like 20GB, 500MB or a number of bytes")
    number, unit = match.groups()
    size = float(number) * _SIZE_UNITS[(unit or "B").lower()]
    if size != int(size):
        raise ValueError("must be a whole number of bytes")
    return int(size)


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host and TCP/UDP port, written `127.0.0.1:8080` or `[::1]:8080`."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The http:// base URL of this address."""
        return f"http://{self}"


def parse_host_port(text: str) -> HostPort:
    """Parse `host:port` (IPv6 in brackets) into a HostPort; ValueError naming what is wrong."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("must be host:port, such as 127.0.0.1:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError("an IPv6 address must be in brackets, such as [::1]:8080")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("port must be a number from 1 to 65535")
    return HostPort(host, int(port_text))
