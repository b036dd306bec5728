"""Folding poll results into usage and health, and persisting both.

The scheduler hands every result here. A `Sample` goes through the usage core (deltas per month
and SIM, written with the new readings in one transaction) and every result through the health
state machine (state and transition written together). The latest values stay in memory for the
API and metrics; the database is the truth a restart resumes from.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from monitor.core.calendar import month_key
from monitor.core.health import HealthRules, observe
from monitor.core.status import StatusBoard
from monitor.core.usage import account
from monitor.model import HealthState, PollResult, PollTarget, Sample, UsageState
from monitor.store import HealthStore, UsageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackingRules:
    """What tracking is told: the zone months are counted in, the cap, the health durations."""

    zone: ZoneInfo
    cap_bytes: int
    health: HealthRules


class Tracker:
    """Usage and health of every router, kept current from poll results."""

    def __init__(self, usage: UsageStore, health: HealthStore, rules: TrackingRules) -> None:
        self._usage = usage
        self._health = health
        self._rules = rules
        self.board = StatusBoard()
        self.usage_states: dict[str, UsageState] = {}
        self.health_states: dict[str, HealthState] = {}
        # ("sim", iccid, month) or ("router", id, month) -> bytes both ways, this month so far
        self._cap_totals: dict[tuple[str, str, str], int] = {}
        self._capped: dict[str, bool] = {}

    def load(self) -> None:
        """Resume from the database (blocking: call before polling starts)."""
        self.usage_states = self._usage.load_states()
        self.health_states = self._health.load_states()

    async def handle(self, target: PollTarget, result: PollResult) -> None:
        """Fold one poll result in; the scheduler's result sink."""
        message = self.board.record(result)
        if message:
            log.info("%s", message)
        router_id = result.router_id
        if isinstance(result, Sample):
            self._capped[router_id] = await self._account(result)
        previous = self.health_states.get(router_id)
        capped = self._capped.get(router_id, False)
        state, transition = observe(previous, result, capped, self._rules.health)
        if transition is not None or _damping_changed(previous, state):
            await asyncio.to_thread(self._health.record, state, transition)
        self.health_states[router_id] = state
        if transition is not None:
            log.info(
                "router %s: %s -> %s: %s",
                router_id, transition.from_state, transition.to_state, transition.reason,
            )  # fmt: skip

    async def _account(self, sample: Sample) -> bool:
        """Count the sample's usage; return whether its SIM has reached the cap this month."""
        previous = self.usage_states.get(sample.router_id)
        result = account(previous, sample, self._rules.zone)
        await asyncio.to_thread(self._usage.record, result.state, result.deltas, sample.at)
        self.usage_states[sample.router_id] = result.state
        for note in result.notes:
            # Per-poll detail (wraps, recoveries, seeds): health transitions carry the news.
            log.debug("router %s: %s", sample.router_id, note)
        for delta in result.deltas:  # totals not yet cached are read from the DB when needed
            key = _cap_key(sample.router_id, delta.iccid, delta.month)
            if key in self._cap_totals:
                self._cap_totals[key] += delta.received + delta.sent
        iccid = result.state.iccid
        key = _cap_key(sample.router_id, iccid, month_key(sample.at, self._rules.zone))
        if key not in self._cap_totals:
            self._cap_totals[key] = await asyncio.to_thread(self._stored_total, key)
        return self._cap_totals[key] >= self._rules.cap_bytes

    def _stored_total(self, key: tuple[str, str, str]) -> int:
        kind, name, month = key
        if kind == "sim":
            usage = self._usage.sim_month(name, month)
            return usage.total if usage else 0
        return sum(m.total for m in self._usage.months(name) if m.month == month and not m.iccid)


def _cap_key(router_id: str, iccid: str | None, month: str) -> tuple[str, str, str]:
    """What the cap counts: the SIM's month across routers; the router's when no ICCID is known."""
    return ("sim", iccid, month) if iccid else ("router", router_id, month)


def _damping_changed(before: HealthState | None, after: HealthState) -> bool:
    """Whether what a restart needs changed (not merely the time of the last observation)."""
    if before is None:
        return True
    return (before.state, before.since, before.pending, before.pending_since) != (
        after.state,
        after.since,
        after.pending,
        after.pending_since,
    )
