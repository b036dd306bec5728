"""Delivering notifications from the outbox, and keeping Alertmanager's copy of firing alerts.

The dispatcher claims due `notify` rows (a conditional UPDATE: one sender per row, even across
processes), sends the alert as it now stands to every notifier, and marks the row sent, failed
for good (a permanent error: counted, never retried), or due again after a backoff. Sends run in
threads with tenacity's retries inside a short budget, so a slow or dead notifier never blocks
polling; a crash mid-send leaves the row claimed until its lease runs out, then it is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from monitor.alerts.notify import AlertmanagerNotifier, Notifier, deliver
from monitor.alerts.transport import NotifyError
from monitor.errors import StoreError
from monitor.model import Alert, AlertState
from monitor.store import AlertStore
from monitor.store.alerts import Queued

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class NotificationDispatcher:
    """Sends queued notifications to every configured notifier."""

    def __init__(
        self,
        store: AlertStore,
        notifiers: Sequence[Notifier],
        *,
        lease: timedelta = timedelta(minutes=2),
        retry_for: timedelta = timedelta(seconds=20),
        max_backoff: timedelta = timedelta(minutes=30),
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._notifiers = list(notifiers)
        self._lease = lease
        self._retry_for = retry_for
        self._max_backoff = max_backoff
        self._clock = clock
        self.failed = 0  # rows given up for good (permanent errors)

    async def dispatch_once(self) -> int:
        """Send what is due now; return how many rows were settled (sent or failed)."""
        if not self._notifiers:
            return 0
        rows = await asyncio.to_thread(self._store.claim, "notify", self._clock(), self._lease)
        settled = 0
        for row in rows:
            settled += await self._settle(row)
        return settled

    async def resend_firing(self, alerts: Sequence[Alert]) -> None:
        """Post every firing alert to Alertmanager again, so its copy never expires."""
        firing = [alert for alert in alerts if alert.state is AlertState.FIRING]
        for notifier in self._notifiers:
            if firing and isinstance(notifier, AlertmanagerNotifier):
                try:
                    await asyncio.to_thread(deliver, notifier, firing, self._retry_for)
                except NotifyError as exc:
                    log.warning("re-sending firing alerts to %r failed: %s", notifier, exc)

    async def run(
        self, stop: asyncio.Event, alerts: Callable[[], Sequence[Alert]], every: timedelta
    ) -> None:
        """Dispatch every `every`, and re-send firing alerts each resend interval, until stop."""
        resend_due = self._clock()
        while not stop.is_set():
            try:
                await self.dispatch_once()
            except StoreError as exc:  # the rows stay queued; try again next round
                log.error("cannot read the outbox: %s", exc)
            if self._clock() >= resend_due:
                await self.resend_firing(alerts())
                resend_due = self._clock() + timedelta(minutes=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())

    async def _settle(self, row: Queued) -> int:
        if row.alert is None:  # the alert went inactive and was removed: nothing to say
            await asyncio.to_thread(self._store.finish, row.id, "sent", self._clock())
            return 1
        try:
            for notifier in self._notifiers:
                await asyncio.to_thread(deliver, notifier, [row.alert], self._retry_for)
        except NotifyError as exc:
            if exc.permanent:
                self.failed += 1
                log.error(
                    "notification %s of %s failed for good: %s", row.event, row.alert.rule, exc
                )
                await asyncio.to_thread(
                    self._store.finish, row.id, "failed", self._clock(), str(exc)
                )
                return 1
            delay = min(self._max_backoff, timedelta(seconds=30) * 2 ** min(row.attempt, 10))
            later = self._clock() + delay
            await asyncio.to_thread(self._store.finish, row.id, "pending", later, str(exc))
            return 0
        await asyncio.to_thread(self._store.finish, row.id, "sent", self._clock())
        return 1
