"""Support requests from the outbox to the support portal: raised once, noted, resolved.

The dispatcher claims due `support` outbox rows (one sender per row, across processes) and, in a
worker thread, moves each request on:

- `firing`: look the correlation id up in the portal and create the incident only if none
  exists (each retry looks again, so a create whose reply was lost is found, not repeated);
  a kind the configuration routes nowhere is only recorded, and a problem that cleared before
  it could be raised (the portal was down) is not raised late;
- `update`: append a work note saying how things stand now;
- `resolved`: resolve the incident (state 6, close code and notes) if so configured, else note
  that the problem cleared; a request never raised (the portal was down all along) is closed
  here without troubling the portal.

Transient failures (down, 5xx, 429 with `Retry-After`, timeouts) retry with tenacity inside a
short budget and then wait in the outbox with a growing backoff, for as long as the portal is
down; permanent ones (400, 401, 403) are counted and logged and never retried: a refused create
marks the request failed, a refused note or resolution fails only that step. Rows are claimed
one at a time and an episode's rows in order (`AlertStore.claim`); a crash mid-send leaves the
row claimed until its lease runs out, and the next sender's lookup then finds whatever the
first one created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from monitor.alerts.servicenow import GONE, Incident, ServiceNowPortal, work_note
from monitor.alerts.transport import NotifyError, call_with_retries
from monitor.errors import StoreError
from monitor.metrics import DaemonMetrics
from monitor.model import (
    Alert,
    AlertState,
    SupportRequest,
    SupportRequestKind,
    SupportRequestState,
)
from monitor.store import AlertStore, SupportRequests
from monitor.store.alerts import Queued

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


class SupportDispatcher:
    """Sends queued support requests to the portal and follows their response."""

    def __init__(
        self,
        alerts: AlertStore,
        requests: SupportRequests,
        portal: ServiceNowPortal | None,
        *,
        send_kinds: Collection[str],
        resolve: bool = True,
        close_code: str = "Resolved by caller",
        lease: timedelta = timedelta(minutes=2),
        retry_for: timedelta = timedelta(seconds=20),
        max_backoff: timedelta = timedelta(minutes=30),
        response_check: timedelta = timedelta(minutes=10),
        max_rows: int = 50,
        metrics: DaemonMetrics | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._alerts = alerts
        self._requests = requests
        self._portal = portal
        self._send_kinds = frozenset(send_kinds)
        self._resolve = resolve
        self._close_code = close_code
        self._lease = lease
        self._retry_for = retry_for
        self._max_backoff = max_backoff
        self._response_check = response_check
        self._max_rows = max_rows
        self._metrics = metrics
        self._clock = clock
        # Every (kind, state) is published from the start, 0 until it happens, so dashboards
        # and alert rules see a value rather than nothing.
        self._seen = {(k.value, s.value) for k in SupportRequestKind for s in SupportRequestState}
        self.failed = 0  # requests the portal refused for good

    async def dispatch_once(self) -> int:
        """Move on what is due; return how many outbox rows were settled.

        Rows are claimed one at a time, so a lease only has to outlast one row's work (however
        slow the portal); the round ends at the first transient failure (the portal is down or
        busy: the rest would only wait their turn to fail) or after `max_rows`.
        """
        settled = 0
        for _ in range(self._max_rows):
            now = self._clock()
            rows = await asyncio.to_thread(self._alerts.claim, "support", now, self._lease, 1)
            if not rows:
                break
            outcome = await asyncio.to_thread(self._settle, rows[0])
            if outcome is None:
                break
            settled += outcome
        return settled

    async def check_responses(self) -> int:
        """Ask the portal whether open requests have been picked up; return how many were.

        At most `max_rows` per round, ending at the first failure (the portal is unwell).
        """
        if self._portal is None:
            return 0
        waiting = await asyncio.to_thread(self._requests.awaiting_response)
        answered = 0
        for request in waiting[: self._max_rows]:
            if request.portal_sys_id is None:
                continue
            try:
                incident = await asyncio.to_thread(self._portal.get, request.portal_sys_id)
            except NotifyError as exc:
                if exc.status == GONE:  # deleted in the portal: nothing left to wait for
                    await asyncio.to_thread(self._gone, request, str(exc))
                    continue
                log.info("cannot check request %s: %s", request.portal_number, exc)
                if exc.permanent:
                    continue
                break
            if incident.responded:
                at = self._clock()
                await asyncio.to_thread(self._requests.mark_responded, request.correlation_id, at)
                answered += 1
        return answered

    def publish(self) -> None:
        """Set the request and outbox gauges from the database (blocking)."""
        if self._metrics is None:
            return
        counts = self._requests.counts()
        for kind, state in {*counts, *self._seen}:
            self._metrics.support_requests.labels(kind=kind, state=state).set(
                counts.get((kind, state), 0)
            )
        self._seen.update(counts)
        self._metrics.outbox_pending.set(self._alerts.pending())

    async def run(self, stop: asyncio.Event, every: timedelta) -> None:
        """Dispatch every `every`, check responses now and then, until `stop` is set."""
        check_due = self._clock()
        while not stop.is_set():
            try:
                await self.dispatch_once()
                if self._clock() >= check_due:
                    await self.check_responses()
                    check_due = self._clock() + self._response_check
                await asyncio.to_thread(self.publish)
            except StoreError as exc:  # the rows stay queued; try again next round
                log.error("cannot read or update support requests: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())

    # --- one row, in a worker thread ------------------------------------------------------------

    def _settle(self, row: Queued) -> int | None:
        """1 if the row is settled (sent or failed for good), None if it must wait (transient)."""
        request = self._requests.get(row.episode_id)
        if request is None:  # nothing was asked for this episode
            self._alerts.finish(row.id, "sent", self._clock())
            return 1
        try:
            if row.event == "firing":
                self._raise(request, row.alert)
            elif row.event == "update":
                self._note(request, row.alert)
            else:
                self._close(request, row.alert)
        except NotifyError as exc:
            now = self._clock()
            if exc.permanent:
                self.failed += 1
                log.error(
                    "support request %s (%s, %s) refused for good: %s",
                    request.correlation_id,
                    request.kind,
                    row.event,
                    exc,
                )
                if row.event == "firing":  # never raised: an operator must look
                    self._requests.mark_failed(request.correlation_id, str(exc), now)
                else:  # the incident stands; only this note or resolution was refused
                    self._requests.note_error(request.correlation_id, str(exc), now)
                self._alerts.finish(row.id, "failed", now, str(exc))
                return 1
            delay = min(self._max_backoff, timedelta(seconds=30) * 2 ** min(row.attempt - 1, 10))
            if exc.retry_after is not None:
                delay = max(delay, timedelta(seconds=exc.retry_after))
            log.warning(
                "support request %s (%s): portal unavailable, next try in %ds: %s",
                request.correlation_id,
                row.event,
                delay.total_seconds(),
                exc,
            )
            self._requests.note_error(request.correlation_id, str(exc), now)
            self._alerts.finish(row.id, "pending", now + delay, str(exc))
            return None
        self._alerts.finish(row.id, "sent", self._clock())
        return 1

    def _gone(self, request: SupportRequest, error: str) -> None:
        """The portal no longer has the incident: stop waiting on it, and say why."""
        log.warning(
            "support request %s: incident %s is no longer in the portal",
            request.correlation_id,
            request.portal_number,
        )
        now = self._clock()
        self._requests.mark_resolved(request.correlation_id, now)
        self._requests.note_error(request.correlation_id, f"incident gone: {error}", now)

    def _sends(self, request: SupportRequest) -> ServiceNowPortal | None:
        """The portal this request goes to, or None when it is only recorded."""
        return self._portal if request.kind.value in self._send_kinds else None

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        return call_with_retries(call, f"{self._portal!r} {what}", self._retry_for)

    def _raise(self, request: SupportRequest, alert: Alert | None) -> None:
        if request.state is not SupportRequestState.QUEUED:
            return  # already raised, closed before it was raised, or failed
        portal = self._sends(request)
        if portal is None:
            self._requests.mark_recorded(request.correlation_id, self._clock())
            return
        behalf = request.on_behalf_of or request.organisation_id or "unknown"
        cleared = (
            alert is None
            or alert.episode_id != request.correlation_id
            or alert.state is not AlertState.FIRING
        )

        def find_or_create() -> Incident | None:
            # Looked up on every attempt: the previous attempt's create may have landed.
            found = portal.find(request.correlation_id)
            if found is not None or cleared:  # a problem gone by now is not worth raising
                return found
            return portal.create(request, alert, behalf)

        incident = self._retrying(find_or_create, f"raising {request.correlation_id}")
        if incident is None:
            log.info("support request %s not raised: it cleared first", request.correlation_id)
            self._requests.mark_resolved(request.correlation_id, self._clock())
            return
        now = self._clock()
        cid = request.correlation_id
        if not self._requests.mark_open(cid, incident.sys_id, incident.number, now):
            # Closed meanwhile (by another sender that found nothing yet): close this too.
            closed = self._requests.get(cid)
            if closed is not None and closed.state is SupportRequestState.RESOLVED:
                self._resolve_incident(portal, incident.sys_id, alert, cid)
            return
        if incident.responded:
            self._requests.mark_responded(request.correlation_id, now)
        log.warning(
            "support request %s raised: %s %s for %s",
            incident.number,
            request.kind,
            request.correlation_id,
            request.router_id or request.organisation_id,
        )

    def _note(self, request: SupportRequest, alert: Alert | None) -> None:
        portal = self._sends(request)
        sys_id = request.portal_sys_id
        if (
            portal is None
            or alert is None
            or sys_id is None  # not raised yet: when it is, it describes things as they are then
            or alert.episode_id != request.correlation_id  # about a later episode, not this one
        ):
            return
        if request.state is SupportRequestState.OPEN:
            self._retrying(lambda: portal.note(sys_id, work_note(alert)), f"noting on {sys_id}")

    def _close(self, request: SupportRequest, alert: Alert | None) -> None:
        if request.state in (SupportRequestState.RESOLVED, SupportRequestState.FAILED):
            return
        portal = self._sends(request)
        sys_id = request.portal_sys_id
        if portal is not None and sys_id is None:  # not known to be raised: was it, though?
            found = self._retrying(lambda: portal.find(request.correlation_id), "looking up")
            sys_id = found.sys_id if found else None
        if portal is not None and sys_id is not None:
            self._resolve_incident(portal, sys_id, alert, request.correlation_id)
        self._requests.mark_resolved(request.correlation_id, self._clock())

    def _resolve_incident(
        self, portal: ServiceNowPortal, sys_id: str, alert: Alert | None, correlation_id: str
    ) -> None:
        """Resolve (or note) an incident whose problem cleared; leave one staff closed alone."""
        try:
            incident = self._retrying(lambda: portal.get(sys_id), f"reading {sys_id}")
        except NotifyError as exc:
            if exc.status == GONE:  # deleted in the portal: there is nothing left to resolve
                log.warning("incident %s of %s is no longer in the portal", sys_id, correlation_id)
                return
            raise
        if not incident.active:
            return  # the support team closed it already: leave their resolution alone
        ended = alert.ends_at if alert and alert.episode_id == correlation_id else None
        cleared = "router-monitor: the problem cleared" + (
            f" at {ended.isoformat()}" if ended else ""
        )
        if self._resolve:
            self._retrying(
                lambda: portal.resolve(sys_id, self._close_code, cleared), f"resolving {sys_id}"
            )
        else:
            self._retrying(lambda: portal.note(sys_id, cleared), f"noting on {sys_id}")
