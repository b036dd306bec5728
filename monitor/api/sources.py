"""What the status API reads, handed in by the composition root.

The API imports neither the tracker nor the alert engine. It is given a `LiveState` and an
`Alerts` source, of one of two kinds:

- in the daemon's own process, `Tracked` (the tracker's memory) and `Held` (the alert engine's):
  in-memory structures the event loop mutates, read on the loop (async routes);
- in a process of its own (`monitor api`), `Stored` and `StoredAlerts`: what the poller
  publishes to the database (`monitor.store.live`, one batch of writes behind: docs/api.md
  says when that is longer) and the alerts its engine stored (re-read at most every
  `ALERT_SECONDS`).

Database calls go to a worker thread, except reads in `monitor api` on SQLite (see `Reads`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, ParamSpec, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from monitor.core.forecast import forecast
from monitor.core.rules import RouterFacts
from monitor.core.sla import RESPONSE_WORKING_DAYS, due_at
from monitor.core.status import StatusBoard
from monitor.model import Alert, PollStatus, Router
from monitor.store import AlertStore, Inventory, SupportRequests
from monitor.store.access import AccessStore, PasswordCipher
from monitor.store.live import LiveStore

P = ParamSpec("P")
T = TypeVar("T")

ALERT_SECONDS: Final = 2.0
"""How long alerts read from the database are reused (the engine re-evaluates every 30 s)."""

View = tuple[RouterFacts, PollStatus | None]


class Alerts(Protocol):
    """Where the alerts are read from."""

    async def __call__(self) -> Iterable[Alert]:
        """Every alert not inactive."""
        ...

    async def of_router(self, router_id: str) -> Iterable[Alert]:
        """The alerts (not inactive) about one router."""
        ...


class LiveState(Protocol):
    """Where a router's tracked state is read from."""

    async def view(self, router: Router, now: datetime) -> View:
        """Health, this month's usage and its forecast, the latest sample; the poll status."""
        ...


class TrackedState(Protocol):
    """The tracker's face (`monitor.tracking.Tracker` is one)."""

    @property
    def board(self) -> StatusBoard:
        """The latest poll outcome per router."""
        ...

    def facts(self, router: Router, now: datetime) -> RouterFacts:
        """Health, this month's usage and its forecast, and the latest sample of `router`."""
        ...


class Tracked:
    """The live state in this process's memory (the API served by the daemon itself)."""

    def __init__(self, tracked: TrackedState) -> None:
        self._tracked = tracked

    async def view(self, router: Router, now: datetime) -> View:
        """Read on the event loop, which is what changes it."""
        return self._tracked.facts(router, now), self._tracked.board.get(router.id)


class Stored:
    """The live state the poller publishes to the database (the API in a process of its own)."""

    def __init__(
        self, engine: Engine, cap_bytes: int, zone: ZoneInfo, read: Reads | None = None
    ) -> None:
        self._store = LiveStore(engine)
        self._cap_bytes = cap_bytes
        self._zone = zone
        self._read = read or Reads()

    async def view(self, router: Router, now: datetime) -> View:
        """The stored record, its forecast projected to `now` as the tracker would."""
        record, health = await self._read(self._store.read, router.id)
        status = record.status if record is not None else None
        month = record.month if record is not None else None
        projection = None
        if month is not None:
            rate = record.rate if record is not None else None
            projection = forecast(month, self._cap_bytes, now, self._zone, rate)
        sample = status.last_sample if status is not None else None
        return RouterFacts(router, health, month, projection, sample), status


class Held:
    """The alerts an in-process engine holds, as the API reads them (a snapshot per call)."""

    def __init__(self, alerts: Callable[[], Iterable[Alert]]) -> None:
        self._alerts = alerts

    async def __call__(self) -> Iterable[Alert]:
        return list(self._alerts())

    async def of_router(self, router_id: str) -> Iterable[Alert]:
        return [alert for alert in self._alerts() if alert.router_id == router_id]


class StoredAlerts:
    """The alerts the poller's engine stored, re-read at most every `seconds` (one read at a
    time: requests meanwhile share its answer)."""

    def __init__(
        self,
        store: AlertStore,
        seconds: float = ALERT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        read: Reads | None = None,
    ) -> None:
        self._store = store
        self._read = read or Reads()
        self._seconds = seconds
        self._clock = clock
        self._alerts: list[Alert] = []
        self._until = float("-inf")
        self._reading = asyncio.Lock()

    async def __call__(self) -> Iterable[Alert]:
        async with self._reading:
            if self._clock() >= self._until:
                # Thousands of alerts at 100k routers: ~0.2 s (docs/performance.md).
                found = await self._read.scan(self._store.load)
                self._alerts = list(found.values())
                self._until = self._clock() + self._seconds
            return self._alerts

    async def of_router(self, router_id: str) -> Iterable[Alert]:
        """Read now (indexed, a few rows): a router's view needs not wait for the whole set."""
        return await self._read(self._store.of_router, router_id)


class Reads:
    """How the routes run their database reads: on a worker thread (the default), or `inline`
    on the event loop (writes always go to a thread: `StatusSources.write`).

    Inline is for `monitor api` on SQLite, where the loop has nothing else to do but answer and
    a read is CPU work in this process (page cache, memory map) with no network wait worth
    overlapping: on a worker thread it costs the same CPU plus a hand-over of the interpreter
    lock for every row fetched (sqlite3 lets it go and takes it back per row), and under load
    each take waited for the busy loop (docs/performance.md). In the daemon the loop polls, so
    its reads stay on threads; on PostgreSQL they wait on the network, so they do too."""

    def __init__(self, inline: bool = False) -> None:
        self.inline = inline

    async def __call__(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.inline:
            return function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    async def scan(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A read that walks a whole table (a listing's total, every alert): on a worker thread
        even where reads are inline. On the loop, every request waited for it; SQLite lets go
        of the interpreter lock while it scans, so the loop answers meanwhile."""
        return await asyncio.to_thread(function, *args, **kwargs)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StatusSources:
    """Everything the /api/v1 routes read or write."""

    inventory: Inventory
    access: AccessStore
    support: SupportRequests
    live: LiveState
    alerts: Alerts
    cap_bytes: int
    zone: ZoneInfo
    cipher: PasswordCipher | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = _utcnow
    # How soon a lost router's deactivate_sim request follows: an inventory refresh (one poll
    # interval) and an alert evaluation.
    follow_up: timedelta = timedelta(seconds=90)
    # The support portal's response clock, as the daemon's overdue rule counts it (`alerts:`).
    response_working_days: int = RESPONSE_WORKING_DAYS
    holiday_region: str = "ENG"
    read: Reads = field(default_factory=Reads)  # how database reads are run

    async def write(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a database write (an audit entry, a status report) on a worker thread, always:
        on SQLite it may wait for the daemon's batch writer to let go of the write lock, and
        nothing else must wait with it."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def response_due(self, opened_at: datetime) -> datetime:
        """When the portal's response to a request opened at `opened_at` is due."""
        return due_at(opened_at, self.response_working_days, self.zone, self.holiday_region)

    @classmethod
    def build(
        cls,
        engine: Engine,
        live: LiveState,
        alerts: Alerts,
        cap_bytes: int,
        zone: ZoneInfo,
        cipher: PasswordCipher | None,
        follow_up: timedelta = timedelta(seconds=90),
        response_working_days: int | None = None,
        holiday_region: str | None = None,
        read: Reads | None = None,
    ) -> StatusSources:
        """Sources over one database; `cipher` for device passwords (None: none shown); the
        response clock as configured (`alerts:`; None keeps the default, as the rules do)."""
        return cls(
            Inventory(engine),
            AccessStore(engine),
            SupportRequests(engine),
            live,
            alerts,
            cap_bytes,
            zone,
            cipher,
            follow_up=follow_up,
            response_working_days=(
                RESPONSE_WORKING_DAYS if response_working_days is None else response_working_days
            ),
            holiday_region="ENG" if holiday_region is None else holiday_region,
            read=read or Reads(),
        )
