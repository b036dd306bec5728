"""The poll scheduler: every router polled once per interval, on its own stable offset.

Polls are spread evenly over the interval by a per-router offset derived from the router id (so a
restart keeps each router's rhythm and 100k routers never poll in one burst), at most
`concurrency` polls run at once, each within its deadline, and a router is never polled twice at
the same time: when its next turn comes while the last poll still runs, that turn is counted as an
overrun and skipped, not queued. A collector failure or bug never stops the loop, and a slow
inventory read never holds polls up: after the first, the inventory is re-read beside polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from monitor.collectors.base import Collector
from monitor.metrics import DaemonMetrics
from monitor.model import FailureKind, PollFailure, PollResult, PollTarget, Protocol

log = logging.getLogger(__name__)

TargetSource = Callable[[], Awaitable[Sequence[PollTarget]]]
ResultSink = Callable[[PollTarget, PollResult], Awaitable[None]]
Drain = Callable[[], Awaitable[None]]
MonotonicClock = Callable[[], float]
WallClock = Callable[[], datetime]

# A collector must answer within its deadline; this margin only catches one that does not.
_GUARD_SECONDS = 1.0


def offset_fraction(router_id: str) -> float:
    """A stable position in [0, 1) for a router id, the same in every process and run."""
    digest = hashlib.blake2b(router_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Scheduler:
    """Polls the targets it is given through the collector for each protocol."""

    def __init__(
        self,
        targets: TargetSource,
        collectors: Mapping[Protocol, Collector],
        sink: ResultSink,
        metrics: DaemonMetrics,
        *,
        interval: timedelta,
        timeout: timedelta,
        concurrency: int,
        clock: MonotonicClock = time.monotonic,
        wall_clock: WallClock = lambda: datetime.now(UTC),
        drain: Drain | None = None,
    ) -> None:
        """`drain`, if given, is awaited once polling has stopped (no result can arrive after
        it): the sink stores what it queued."""
        self._targets_source = targets
        self._collectors = collectors
        self._sink = sink
        self._metrics = metrics
        self._interval = interval.total_seconds()
        self._timeout = timeout.total_seconds()
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._wall_clock = wall_clock
        self._drain = drain
        self._targets: dict[str, PollTarget] = {}
        self._due: list[tuple[float, str]] = []
        self._scheduled: set[str] = set()  # router ids with an entry in _due
        self._running: dict[str, asyncio.Task[None]] = {}
        self._overrunning: set[str] = set()
        self._inventory_failing = False
        self._next_refresh = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()  # wakes the loop: a refresh ended, or the stop came
        self.cycles = 0  # inventory refreshes done; readiness waits for the first

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then cancel the polls still in flight."""
        watching = asyncio.create_task(self._nudge_on(stop), name="scheduler stop")
        try:
            while not stop.is_set():
                now = self._clock()
                if self._refreshing is not None and self._refreshing.done():
                    finished, self._refreshing = self._refreshing, None
                    if not finished.cancelled():
                        finished.result()  # a bug in refresh ends the loop, as when awaited
                reading = self._refreshing is not None
                if now >= self._next_refresh and not reading:
                    self._next_refresh = now + self._interval
                    self._start_refresh(now)
                    reading = True
                self._start_due(now)
                # A read still running when the next is due (a hung database: `refresh` gives
                # up after an interval) is let finish, and the next starts when it ends.
                wake = self._due[0][0] if self._due else math.inf
                if not reading:
                    wake = min(wake, self._next_refresh)
                self._nudged.clear()
                timeout = None if wake == math.inf else max(0.0, wake - self._clock())
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that comes as the event is set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._nudged.wait()
        finally:
            # Polls in flight are only reads: cancel them rather than hold shutdown up to a
            # whole timeout; the same for an inventory read still running.
            tasks = [watching, *self._running.values()]
            if self._refreshing is not None:
                tasks.append(self._refreshing)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            if self._drain is not None:
                await self._drain()

    async def _nudge_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._nudged.set()

    def _start_refresh(self, now: float) -> None:
        """Re-read the inventory in a task of its own, so that polls keep starting on time while
        it runs (at 100k routers a read takes seconds); its end wakes the loop."""
        self._refreshing = asyncio.create_task(self.refresh(now), name="inventory refresh")
        self._refreshing.add_done_callback(lambda _: self._nudged.set())

    async def refresh(self, now: float) -> None:
        """Re-read the targets: new routers join on their offset, removed ones leave."""
        try:
            # A hung database must not stop polling: give up on this refresh after an interval.
            async with asyncio.timeout(self._interval):
                targets = await self._targets_source()
        except Exception:  # any inventory failure: keep polling what we know, say so once
            self._metrics.inventory_errors.inc()
            if not self._inventory_failing:
                log.exception("cannot read the router inventory; keeping the last known list")
            self._inventory_failing = True
            return
        if self._inventory_failing:
            log.info("router inventory readable again")
            self._inventory_failing = False
        # New routers join from now, not from when the read began: a turn that fell during a
        # slow read would otherwise start at once, with every other such router's.
        now = max(now, self._clock())
        fresh = {target.router_id: target for target in targets}
        for router_id in fresh.keys() - self._scheduled:
            heapq.heappush(self._due, (self._next_turn(router_id, now), router_id))
            self._scheduled.add(router_id)
        if len(fresh) != len(self._targets):
            log.info("%d routers scheduled for polling", len(fresh))
        self._targets = fresh
        self._metrics.inventory_routers.set(len(fresh))
        self.cycles += 1

    def _next_turn(self, router_id: str, now: float) -> float:
        offset = offset_fraction(router_id) * self._interval
        turns = (now - offset) // self._interval + 1
        return turns * self._interval + offset

    def _start_due(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            due, router_id = heapq.heappop(self._due)
            target = self._targets.get(router_id)
            if target is None:
                self._scheduled.discard(router_id)
                continue  # removed from the inventory: drop it from the schedule
            heapq.heappush(self._due, (due + self._interval, router_id))
            if router_id in self._running:
                self._overrun(router_id)
                continue
            if router_id in self._overrunning:
                self._overrunning.discard(router_id)
                log.info("router %s: polls keep up with the interval again", router_id)
            task = asyncio.create_task(self._poll(target), name=f"poll {router_id}")
            self._running[router_id] = task
            task.add_done_callback(functools.partial(self._finished, router_id))

    def _finished(self, router_id: str, _: asyncio.Task[None]) -> None:
        self._running.pop(router_id, None)

    def _overrun(self, router_id: str) -> None:
        self._metrics.poll_overruns.inc()
        if router_id not in self._overrunning:
            self._overrunning.add(router_id)
            log.warning(
                "router %s: previous poll still running at its next turn; turn skipped", router_id
            )

    async def _poll(self, target: PollTarget) -> None:
        async with self._slots:
            started = self._clock()
            result = await self._collect(target)
            self._metrics.poll_duration.observe(self._clock() - started)
        outcome = result.kind.value if isinstance(result, PollFailure) else "success"
        self._metrics.polls.labels(result=outcome).inc()
        try:
            await self._sink(target, result)
        except Exception:  # a bug in handling one result must not stop the others
            log.exception("router %s: handling the poll result failed", target.router_id)

    async def _collect(self, target: PollTarget) -> PollResult:
        collector = self._collectors.get(target.endpoint.protocol)
        if collector is None:
            detail = f"no collector for protocol {target.endpoint.protocol.value}"
            kind = FailureKind.UNSUPPORTED
            return PollFailure(target.router_id, self._wall_clock(), kind, detail)
        try:
            async with asyncio.timeout(self._timeout + _GUARD_SECONDS):
                return await collector.poll(target, self._timeout)
        except TimeoutError:
            detail = f"no result within {self._timeout:g}s"
            return PollFailure(target.router_id, self._wall_clock(), FailureKind.TIMEOUT, detail)
        except Exception as exc:  # a collector bug: report it as what the router looks like
            log.exception("router %s: collector failed", target.router_id)
            detail = f"collector error: {type(exc).__name__}"
            return PollFailure(target.router_id, self._wall_clock(), FailureKind.BAD_REPLY, detail)
