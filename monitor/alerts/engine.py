"""The alert engine: evaluates the rules over every router on a rhythm, persists what changed.

Each evaluation builds every monitored router's facts from the tracker, runs the pure rules and
group-outage logic, advances each alert's lifecycle and writes the changes together with their
outbox rows (`AlertStore.apply`). Delivery (notifiers, the support portal) works from the outbox,
so an evaluation never waits on a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from monitor.core.lifecycle import OutageRules, advance_all, group_outages
from monitor.core.rules import AlertRules, evaluate, overdue
from monitor.errors import StoreError
from monitor.metrics import DaemonMetrics
from monitor.model import Alert, AlertState, Condition, Router, Rule
from monitor.store import AlertStore, SupportRequests
from monitor.tracking import Tracker

log = logging.getLogger(__name__)

Routers = Callable[[], Sequence[Router] | None]  # None: not known yet, do not evaluate
EVALUATION_SLICE = 2_000  # routers evaluated between two turns of the event loop


class AlertEngine:
    """Keeps the alerts current with the tracked state of every router."""

    def __init__(
        self,
        store: AlertStore,
        tracker: Tracker,
        routers: Routers,
        rules: AlertRules,
        outage: OutageRules,
        metrics: DaemonMetrics | None = None,
        requests: SupportRequests | None = None,
    ) -> None:
        self._store = store
        self._tracker = tracker
        self._routers = routers
        self._rules = rules
        self._outage = outage
        self._metrics = metrics
        self._requests = requests  # for support_request_overdue
        self.alerts: dict[str, Alert] = {}
        self._failing = False

    def load(self) -> None:
        """Resume from the database (blocking: call before the first evaluation)."""
        self.alerts = self._store.load()
        if self._metrics is not None:  # every rule shows, 0 until it fires
            self._metrics.seen_rules.update(rule.value for rule in Rule)
        self._publish()

    async def evaluate(self, now: datetime) -> None:
        """One evaluation of every router's rules at `now` (none while the routers are unknown)."""
        known = self._routers()
        if known is None:
            return
        routers = list(known)  # this evaluation's fleet, whatever a refresh does meanwhile
        conditions: list[Condition] = []
        for start in range(0, len(routers), EVALUATION_SLICE):
            if start:
                # 100k routers take about a second: let polls and API calls run in between.
                # The alerts change only below; a router's facts may be a poll newer than
                # `now` in a later slice, which at worst moves a change to the next evaluation.
                await asyncio.sleep(0)
            for router in routers[start : start + EVALUATION_SLICE]:
                conditions += evaluate(self._tracker.facts(router, now), now, self._rules)
        conditions = group_outages(conditions, self.alerts, now, self._outage)
        if self._requests is not None:
            try:
                waiting = await asyncio.to_thread(self._requests.awaiting_response)
            except StoreError as exc:
                log.error("cannot read support requests: %s", exc)
                return  # an evaluation without them would resolve their overdue alerts
            conditions += overdue(waiting, now, self._rules)
        steps = [s for s in advance_all(self.alerts, conditions, now) if s.changed or s.updated]
        if not steps:
            return
        try:
            queued = await asyncio.to_thread(self._store.apply, steps, now)
        except StoreError as exc:  # alerts are re-derived next time from the same state
            if not self._failing:
                log.error("cannot record alerts (retried every evaluation): %s", exc)
            self._failing = True
            return
        self._failing = False
        for step in steps:
            alert = step.alert
            if alert.state is AlertState.INACTIVE:
                self.alerts.pop(alert.fingerprint, None)
            else:
                self.alerts[alert.fingerprint] = alert
            if step.changed and alert.state in (AlertState.FIRING, AlertState.RESOLVED):
                subject = alert.router_id or alert.organisation_id
                log.warning("alert %s %s: %s", alert.rule, alert.state, subject)
        if queued:
            log.debug("%d outbox rows queued", queued)
        self._publish()

    async def run(self, stop: asyncio.Event, every: timedelta) -> None:
        """Evaluate every `every` until `stop` is set."""
        while not stop.is_set():
            await self.evaluate(datetime.now(UTC))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())

    def _publish(self) -> None:
        if self._metrics is None:
            return
        firing: dict[str, int] = {}
        for alert in self.alerts.values():
            if alert.state is AlertState.FIRING:
                firing[alert.rule.value] = firing.get(alert.rule.value, 0) + 1
        for rule in {*firing, *self._metrics.seen_rules}:
            self._metrics.alerts_firing.labels(rule=rule).set(firing.get(rule, 0))
        self._metrics.seen_rules.update(firing)
