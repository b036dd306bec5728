"""Storing poll results behind the poll path: queued, coalesced, written in batches.

A poll never waits for the database. The tracker's in-memory state is what the live process
reads; what the database needs to catch up is queued per router (`PendingWrites`) and written
every `every` seconds, or sooner once `trigger` routers are waiting, one transaction per batch,
on one writer thread of its own (not the event loop's default pool, which the API shares).

What the cap counts is the month total in the database (a SIM's bytes across every router it
was in, from every poller) plus the bytes queued here: each batch re-reads the totals it touched
in its own transaction, so the sum never counts a byte twice nor misses one this process saw.

A database that fails keeps the queue: it is retried with backoff (1 s doubling to 30 s), the
failure is logged once and its recovery once. The queue holds one entry per router however long
the outage lasts (newest readings, summed bytes), so memory stays bounded by the fleet; only
the health transition history is capped (`max_transitions`, queued and in flight), beyond which
history rows are dropped and counted, with one warning per outage (the current health state is
always kept).

The writer never dies of a surprise: an unexpected error while writing or settling a batch is
logged with its traceback and the batch is kept for a retry (it is applied once however often
it is tried: see `monitor.store.batch`); a writer task that ended anyway is started again by the
next poll, and `close` stores what is queued whatever happened before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from monitor.errors import StoreError
from monitor.model import (
    HealthState,
    LiveRecord,
    MonthUsage,
    Transition,
    UsageDelta,
    UsageState,
)
from monitor.store.batch import (
    ANY_BASE,
    BatchResult,
    BatchWriter,
    MonthSum,
    PendingWrites,
    RouterWrites,
)
from monitor.store.usage import CapKey, cap_key

log = logging.getLogger(__name__)

_UNKNOWN = object()  # a cap key whose database total has not been read yet
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # never used in practice: queued bytes carry a time


class WriteBehind:
    """The queue of poll results between the tracker and the database."""

    def __init__(
        self,
        writer: BatchWriter,
        *,
        every: float = 0.5,
        trigger: int = 500,
        batch: int = 2000,
        max_transitions: int = 100_000,
        retry: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.pending = PendingWrites(max_transitions)
        self._writer = writer
        self._every = every
        self._trigger = trigger
        self._batch = batch
        self._retry_first, self._retry_most = retry
        self._delay = self._retry_first
        self._retry_at = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._one_batch = asyncio.Lock()
        self._stopping = False
        self._failing = False
        self._dropping = False  # transitions are being dropped (warned once per episode)
        self._base: dict[CapKey, MonthUsage | None] = {}  # as last read from the database
        self._newest_month = ""
        self._unflushed: dict[CapKey, MonthSum] = {}  # queued bytes (in flight included)
        self.on_stored: Callable[[list[RouterWrites]], None] | None = None
        self.errors = 0  # failed batch writes
        self.batches = 0  # batches stored
        self.stored = 0  # router entries stored

    def know(self, totals: Mapping[CapKey, MonthUsage | None]) -> None:
        """Take cap totals read from the database (at startup, before polling)."""
        self._remember(totals)

    def add_usage(
        self,
        state: UsageState,
        deltas: Iterable[UsageDelta],
        at: datetime,
        month: str,
        base: datetime | None = ANY_BASE,
    ) -> MonthUsage | None:
        """Queue new readings and their bytes, counted from the readings taken at `base` (None:
        there were none); return what the cap now counts for `month`."""
        deltas = list(deltas)
        self.pending.add_usage(state, deltas, at, month, base)
        for delta in deltas:
            key = cap_key(delta.router_id, delta.iccid, delta.month)
            sums = self._unflushed.setdefault(key, MonthSum())
            sums.add(delta.received, delta.sent, int(delta.partial), at)
        self._poke()
        return self.cap_total(cap_key(state.router_id, state.iccid, month), state.router_id)

    def add_health(self, state: HealthState, transition: Transition | None) -> None:
        """Queue a router's health state and the transition that produced it, if any."""
        if not self.pending.add_health(state, transition) and not self._dropping:
            self._dropping = True
            log.warning(
                "store queue full: health transition history is being dropped until the "
                "database catches up (current states are kept)"
            )
        self._poke()

    def add_live(self, record: LiveRecord) -> None:
        """Queue what a router shows readers in other processes (written with its batch)."""
        self.pending.add_live(record)
        self._poke()

    def cap_total(self, key: CapKey, router_id: str) -> MonthUsage | None:
        """What the cap counts for `key`: stored total plus queued bytes (None: nothing known)."""
        base = self._base.get(key, _UNKNOWN)
        stored = base if isinstance(base, MonthUsage) else None
        queued = self._unflushed.get(key)
        if queued is None:
            return stored
        iccid, _, month = key
        if stored is None:
            return MonthUsage(
                router_id, iccid or None, month, queued.received, queued.sent,
                queued.partials > 0, queued.at or _EPOCH,
            )  # fmt: skip
        updated = max(stored.updated_at, queued.at) if queued.at else stored.updated_at
        return MonthUsage(
            stored.router_id, stored.iccid, month, stored.received + queued.received,
            stored.sent + queued.sent, stored.partial or queued.partials > 0, updated,
        )  # fmt: skip

    async def flush(self) -> bool:
        """Store everything queued now; False if the database failed (the rest stays queued)."""
        async with self._one_batch:
            while len(self.pending):
                batch = self.pending.take(self._batch)
                loop = asyncio.get_running_loop()
                try:
                    result = await loop.run_in_executor(self._pool(), self._writer.write, batch)
                except StoreError as exc:
                    result = BatchResult({}, {}, batch, exc, in_doubt=True)
                except Exception as exc:
                    # Not a database error: a bug. Kept, so the batch is not lost with it.
                    log.exception("storing poll results failed unexpectedly (kept for a retry)")
                    error = StoreError(f"unexpected {type(exc).__name__}: {exc}")
                    result = BatchResult({}, {}, batch, error, in_doubt=True)
                try:
                    settled = self._settle(batch, result)
                except Exception as exc:
                    log.exception("accounting for stored poll results failed (kept for a retry)")
                    self.pending.put_back(batch, in_doubt=True)
                    self._failed(StoreError(f"unexpected {type(exc).__name__}: {exc}"))
                    return False
                if not settled:
                    return False
            return True

    async def close(self) -> None:
        """Stop the periodic writes and store what is queued (one last try)."""
        self._stopping = True
        task = self._task
        if task is not None:
            self._wake.set()
            # Lets a batch in flight finish (it may already be committing). A writer that ended
            # with an error (or was cancelled) must not keep the queue from being stored.
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("the store writer had stopped with an error", exc_info=task.exception())
        if not await self.flush():
            log.error(
                "stopping with the results of %d routers not stored: the next start counts "
                "again from the readings stored with the totals, so no byte is counted twice",
                len(self.pending),
            )
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        return self._executor

    def _poke(self) -> None:
        if (self._task is None or self._task.done()) and not self._stopping:
            ended = self._task
            if ended is not None and not ended.cancelled() and ended.exception() is not None:
                log.error("the store writer had stopped: started again", exc_info=ended.exception())
            self._task = asyncio.get_running_loop().create_task(self._run(), name="store writer")
        if len(self.pending) >= self._trigger and not self._failing:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            wait = self._every
            if self._failing:
                wait = max(0.0, self._retry_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            if self._stopping:
                return
            if self._failing and time.monotonic() < self._retry_at:
                continue  # woken early (a full queue): wait for the retry time
            try:
                await self.flush()
            except Exception as exc:  # flush keeps what it could not store: go on writing
                log.exception("storing poll results failed unexpectedly")
                self._failed(StoreError(f"unexpected {type(exc).__name__}: {exc}"))

    def _settle(self, batch: list[RouterWrites], result: BatchResult) -> bool:
        """Account for a batch written (or not); True if all of it is out of the queue."""
        left = {id(entry) for entry in result.unwritten}
        not_added = set(result.refused) | set(result.already) | set(result.not_counted)
        done = [entry for entry in batch if id(entry) not in left]
        for entry in done:
            stored = entry.router_id not in not_added
            for (iccid, month), sums in entry.months.items():
                key = cap_key(entry.router_id, iccid, month)
                self._unqueue(key, sums)
                if stored and key not in result.totals:
                    self._add_to_base(key, entry.router_id, sums)
        self.pending.settled(done)
        self._remember(result.totals)
        for router_id, reason in result.refused.items():
            log.warning(
                "router %s: poll results dropped, the database refused them: %s", router_id, reason
            )
        if result.already:
            log.info(
                "poll results of %d routers were already stored (a commit whose answer was "
                "lost): not added again",
                len(result.already),
            )
        for router_id, skipped in result.not_counted.items():
            log.warning(
                "router %s: the stored readings are not those its last %d bytes were counted "
                "from: readings stored, bytes not counted (never twice)",
                router_id, skipped,
            )  # fmt: skip
        if result.unwritten:
            self.pending.put_back(result.unwritten, result.in_doubt)
            self._failed(result.error)
        else:
            if self._failing:
                log.info("storing poll results again")
                self._failing = False
                self._delay = self._retry_first
            if self._dropping:
                log.info(
                    "health transition history stored again (%d dropped in all)",
                    self.pending.dropped_transitions,
                )
                self._dropping = False
        self.stored += len(done) - len(result.refused)
        self.batches += 1 if done else 0
        if done and self.on_stored is not None:
            try:
                self.on_stored(done)
            except Exception:
                log.exception("after storing poll results: updating what is shown failed")
        return not result.unwritten

    def _failed(self, error: StoreError | None) -> None:
        self.errors += 1
        if not self._failing:
            log.error("cannot store poll results (kept in memory, retried with backoff): %s", error)
        else:
            self._delay = min(self._delay * 2, self._retry_most)
        self._failing = True
        self._retry_at = time.monotonic() + self._delay

    def _unqueue(self, key: CapKey, sums: MonthSum) -> None:
        queued = self._unflushed.get(key)
        if queued is None:
            return
        queued.add(-sums.received, -sums.sent, -sums.partials, None)
        if not (queued.received or queued.sent or queued.partials):
            del self._unflushed[key]

    def _add_to_base(self, key: CapKey, router_id: str, sums: MonthSum) -> None:
        # Stored, but not re-read: carry the bytes over to the stored total we know.
        base = self._base.get(key, _UNKNOWN)
        if base is _UNKNOWN:
            return  # unknown until a later batch re-reads it; counts low, never high
        self._base[key] = self._merged(key, router_id, base, sums)

    @staticmethod
    def _merged(key: CapKey, router_id: str, base: object, added: MonthSum) -> MonthUsage:
        iccid, _, month = key
        at = added.at or _EPOCH
        if not isinstance(base, MonthUsage):
            partial = added.partials > 0
            received, sent = added.received, added.sent
            return MonthUsage(router_id, iccid or None, month, received, sent, partial, at)
        return MonthUsage(
            base.router_id, base.iccid, month, base.received + added.received,
            base.sent + added.sent, base.partial or added.partials > 0, max(base.updated_at, at),
        )  # fmt: skip

    def _remember(self, totals: Mapping[CapKey, MonthUsage | None]) -> None:
        self._base.update(totals)
        newest = max((key[2] for key in totals), default="")
        if newest > self._newest_month:
            # A new month began: totals of months before the last are no longer asked for.
            previous, self._newest_month = self._newest_month, newest
            for key in [key for key in self._base if key[2] < previous]:
                del self._base[key]
