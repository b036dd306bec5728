"""Usage accounting values: what the core remembers per router and the month totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.model.samples import Counter, UptimeClock


@dataclass(frozen=True, slots=True)
class UsageState:
    """What the usage core remembers about one router between polls (persisted after each).

    The last raw readings are kept exactly as the device reported them, so the next sample's
    deltas can be judged against them after a restart as well as between polls.
    """

    router_id: str
    at: datetime  # when these readings were taken (UTC)
    iccid: str | None = None  # the SIM the readings belong to
    received: Counter | None = None
    sent: Counter | None = None
    uptime_seconds: float | None = None
    uptime_clock: UptimeClock | None = None
    month_received: int | None = None  # the device's own month counters, as last seen
    month_sent: int | None = None
    month_cleared: str | None = None
    recent_rate: float | None = None  # bytes/s, smoothed over recent days, for forecasts


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """Bytes newly counted for one SIM in one calendar month ("YYYY-MM", in the zone)."""

    router_id: str
    iccid: str | None
    month: str
    received: int
    sent: int
    partial: bool = False  # the month's total began mid-month with nothing to seed it


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """A SIM's (or router's) running total for one calendar month."""

    router_id: str
    iccid: str | None
    month: str
    received: int
    sent: int
    partial: bool
    updated_at: datetime

    @property
    def total(self) -> int:
        """Bytes both ways: what the data cap counts."""
        return self.received + self.sent
