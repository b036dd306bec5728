"""Working days in England and Wales, and when a support request's response is due.

The programme aims to respond within 3 working days (support guidance). A working day is a
Monday to Friday that is not a bank holiday in England and Wales; the holidays come from the
`holidays` package (subdivisions "ENG" and "WLS" keep the same list today, but are asked for
separately so a divergence, as Scotland's has, is picked up when the package is upgraded).

The clock: a request opened on a working day is due at the same local wall time `n` working
days later (Monday 10:00 -> Thursday 10:00); one opened on any other day is treated as opened at
00:00 on the next working day (Saturday -> due at 00:00 on Thursday, i.e. after three full
working days). Working hours are not modelled: the guidance speaks of days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")
RESPONSE_WORKING_DAYS = 3  # the guidance: "We aim to respond within 3 working days."
REGIONS = frozenset({"ENG", "WLS"})
_MAX_SCAN = 370  # days: no year has a run of non-working days anywhere near this long


@lru_cache(maxsize=64)
def bank_holidays(year: int, region: str = "ENG") -> frozenset[date]:
    """Bank holidays (with substitute days) of one year in England ("ENG") or Wales ("WLS")."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {sorted(REGIONS)}, not {region!r}")
    # Built per year and frozen: the package's own object grows its years as it is queried.
    found = holidays.country_holidays("GB", subdiv=region, years=year, observed=True)
    return frozenset(found.keys())


def is_working_day(day: date, region: str = "ENG") -> bool:
    """Whether `day` is a Monday to Friday that is not a bank holiday."""
    return day.weekday() < 5 and day not in bank_holidays(day.year, region)


def add_working_days(day: date, count: int, region: str = "ENG") -> date:
    """The `count`-th working day after `day` (`day` itself need not be a working day)."""
    if count < 0:
        raise ValueError("count must not be negative")
    for _ in range(count):
        day = next_working_day(day, region)
    return day


def next_working_day(day: date, region: str = "ENG") -> date:
    """The first working day after `day`."""
    for _ in range(_MAX_SCAN):
        day += timedelta(days=1)
        if is_working_day(day, region):
            return day
    raise ValueError(f"no working day within {_MAX_SCAN} days of {day}")  # pragma: no cover


def due_at(
    opened_at: datetime,
    working_days: int = RESPONSE_WORKING_DAYS,
    zone: ZoneInfo = LONDON,
    region: str = "ENG",
) -> datetime:
    """When a response to a request opened at `opened_at` (aware) is due, as a UTC instant."""
    if opened_at.tzinfo is None:
        raise ValueError("opened_at must be timezone-aware")
    local = opened_at.astimezone(zone)
    day, wall = local.date(), local.time().replace(tzinfo=None)
    if not is_working_day(day, region):
        day, wall = next_working_day(day, region), time(0)
    due_day = add_working_days(day, working_days, region)
    # Working days are never Sundays, the only days UK clocks change, so the wall time exists.
    return datetime.combine(due_day, wall, tzinfo=zone).astimezone(UTC)


def is_overdue(
    opened_at: datetime,
    now: datetime,
    working_days: int = RESPONSE_WORKING_DAYS,
    zone: ZoneInfo = LONDON,
    region: str = "ENG",
) -> bool:
    """Whether a request opened at `opened_at` and still unanswered at `now` is overdue."""
    return now >= due_at(opened_at, working_days, zone, region)


def working_days_between(start: date, end: date, region: str = "ENG") -> int:
    """Working days in (start, end]: how many have passed since `start` by the end of `end`."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day, region)
    return count
