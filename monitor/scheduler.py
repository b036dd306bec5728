"""The poll scheduler: once per interval it takes the monitored routers from the inventory.

Collectors (SNMP, HiLink) and the per-router offsets, concurrency and deadlines described in
DESIGN.md arrive with them; until then a cycle reads the inventory, publishes how many routers are
scheduled, and polls none. A failing database read is logged once and retried next cycle: the loop
itself never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from monitor.metrics import DaemonMetrics
from monitor.model import Router

log = logging.getLogger(__name__)

RouterSource = Callable[[], Awaitable[Sequence[Router]]]


class Scheduler:
    """Runs poll cycles every `interval` until `stop` is set."""

    def __init__(self, routers: RouterSource, interval: timedelta, metrics: DaemonMetrics) -> None:
        self._routers = routers
        self._interval = interval.total_seconds()
        self._metrics = metrics
        self._scheduled: int | None = None
        self._failing = False
        self.cycles = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; returns promptly once it is."""
        while not stop.is_set():
            await self.cycle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)

    async def cycle(self) -> None:
        """One pass over the inventory."""
        try:
            routers = await self._routers()
        except Exception:  # any DB failure: keep the loop alive, say so once
            self._metrics.inventory_errors.inc()
            if not self._failing:
                log.exception("cannot read the router inventory; retrying every cycle")
            self._failing = True
            return
        if self._failing:
            log.info("router inventory readable again")
            self._failing = False
        if len(routers) != self._scheduled:
            log.info("%d routers scheduled for polling", len(routers))
            self._scheduled = len(routers)
        self._metrics.inventory_routers.set(len(routers))
        self._metrics.poll_cycles.inc()
        self.cycles += 1
