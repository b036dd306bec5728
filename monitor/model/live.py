"""What a poller publishes of each router for readers in other processes (the status API)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.model.samples import PollStatus
from monitor.model.usage import MonthUsage


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """A router's latest poll status, the month its SIM's cap counts, and the recent rate the
    forecast projects from: with its health state (stored on its own), what a router's view
    needs beyond the inventory."""

    router_id: str
    status: PollStatus | None
    month: MonthUsage | None = None
    rate: float | None = None  # bytes/s (UsageState.recent_rate)
