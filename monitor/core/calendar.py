"""Calendar months in a zone: keys, boundaries, the cap's reset instant and interval splits.

A month runs from 00:00 local time on the 1st to 00:00 local time on the 1st of the next month,
in the zone given (Europe/London for the programme). Boundaries are computed from local wall
time and converted to instants, so a BST change inside a month never moves its boundary; the
month simply has an hour more or less. Arithmetic on instants is done in UTC, where every hour
is an hour.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_MICROSECOND = timedelta(microseconds=1)
_KEY_RE = re.compile(r"^(\d{4})-(\d{2})$")
_DATE_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})")


def month_key(at: datetime, zone: ZoneInfo) -> str:
    """The month ("YYYY-MM") in `zone` that the aware instant `at` falls in."""
    local = at.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def parse_key(key: str) -> tuple[int, int]:
    """Year and month of a "YYYY-MM" key; ValueError if it is not one."""
    match = _KEY_RE.fullmatch(key)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month key (YYYY-MM): {key!r}")
    return int(match.group(1)), int(match.group(2))


def next_key(key: str) -> str:
    """The month after `key`."""
    year, month = parse_key(key)
    year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return f"{year:04d}-{month:02d}"


@functools.lru_cache(maxsize=256)  # asked on every poll, for the same few months
def month_start(key: str, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which month `key` begins: 00:00 local time on the 1st."""
    year, month = parse_key(key)
    # Midnight on the 1st is never inside a UK clock change (they happen at 01:00/02:00 on a
    # Sunday late in March and October), so the local time is unambiguous.
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def month_end(key: str, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which month `key` ends: the start of the next month."""
    return month_start(next_key(key), zone)


def cap_reset(at: datetime, zone: ZoneInfo) -> datetime:
    """When the data cap counting at `at` resets: 00:00 local on the 1st of the next month."""
    return month_end(month_key(at, zone), zone)


def is_first_of_month(stamp: str | None, key: str) -> bool:
    """Whether a device date stamp ("2024-3-1", "2024-03-01 00:00:00") is the 1st of `key`."""
    if stamp is None:
        return False
    match = _DATE_RE.match(stamp)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    return (year, month, day) == (*parse_key(key), 1)


def split(start: datetime, end: datetime, total: int, zone: ZoneInfo) -> list[tuple[str, int]]:
    """Split `total` over [start, end) by calendar month, in proportion to time.

    Parts are whole numbers that add up exactly to `total`: each boundary's share is the floor
    of the cumulative proportion, so rounding never creates or loses a byte. An empty or
    reversed interval puts everything in the month of `end`.
    """
    whole = (end - start) // _MICROSECOND
    if whole <= 0:
        return [(month_key(end, zone), total)]
    parts: list[tuple[str, int]] = []
    key = month_key(start, zone)
    booked = 0
    while True:
        boundary = month_end(key, zone)
        if boundary >= end:
            parts.append((key, total - booked))
            return parts
        upto = total * ((boundary - start) // _MICROSECOND) // whole
        parts.append((key, upto - booked))
        booked = upto
        key = next_key(key)
