"""Month-end projection of a SIM's usage against the data cap.

The method is a straight line: the bytes counted so far plus a rate times the time left in the
calendar month. The rate is the smoothed recent rate the usage core keeps (recent days weigh
most, so a pupil who started streaming last week is projected on this week's habits); without
one, the month's own average. A partial month (counting began mid-month) can only give a lower
bound, and says so. docs/usage-accounting.md describes this for operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.core import calendar
from monitor.model import MonthUsage

DAY = 86400.0
MIN_AVERAGE_SECONDS = DAY  # a month average over less than a day says little
SETTLED_SECONDS = 3 * DAY  # history needed before a projection is better than "low"
SHORT_HORIZON_SECONDS = 7 * DAY  # this close to the month's end there is little to extrapolate
STALE_SECONDS = DAY  # counts this old mean the router has not been heard from


@dataclass(frozen=True, slots=True)
class Forecast:
    """A month's projected total and when the cap would be reached, with how sure we are."""

    projected_total: int  # bytes both ways by the end of the calendar month
    cap_reached_at: datetime | None  # when the cap is (or was) reached; None if not this month
    confidence: str  # "low", "medium" or "high"
    basis: str  # how the projection was made, in words, for operators


def forecast(
    month: MonthUsage, cap_bytes: int, now: datetime, zone: ZoneInfo, recent_rate: float | None
) -> Forecast:
    """Project `month` to its end (in `zone`) and find when it reaches `cap_bytes`."""
    start = calendar.month_start(month.month, zone)
    end = calendar.month_end(month.month, zone)
    counted_to = min(max(month.updated_at, start), end)
    total = month.total
    reached = month.updated_at if total >= cap_bytes else None
    partial = " (partial month: counting began mid-month, so this is a lower bound)"
    if now >= end or counted_to >= end:
        basis = "month ended: the count is final" + (partial if month.partial else "")
        return Forecast(total, reached, "low" if month.partial else "high", basis)

    observed = (counted_to - start).total_seconds()
    if recent_rate is not None:
        rate, basis = max(0.0, recent_rate), "recent rate (smoothed over about 3 days)"
    elif not month.partial and observed >= MIN_AVERAGE_SECONDS:
        rate, basis = total / observed, "this month's average rate"
    else:
        rate, basis = 0.0, "no rate known yet: the projection is the count so far"
    remaining = (end - counted_to).total_seconds()
    projected = total + int(rate * remaining)
    if reached is None and rate > 0:
        # Compare seconds before building a datetime: a trickle of bytes puts the cap centuries
        # away, beyond what a datetime can hold.
        needed = (cap_bytes - total) / rate
        reached = counted_to + timedelta(seconds=needed) if needed < remaining else None

    if month.partial or rate == 0.0 or observed < SETTLED_SECONDS:
        confidence = "low"
    elif (now - month.updated_at).total_seconds() > STALE_SECONDS:
        confidence, basis = "low", basis + "; the router has not been counted for over a day"
    elif remaining <= SHORT_HORIZON_SECONDS:
        confidence = "high"
    else:
        confidence = "medium"
    return Forecast(projected, reached, confidence, basis + (partial if month.partial else ""))
