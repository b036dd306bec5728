"""The `total` of a router listing, counted at most once per scope every few seconds.

Counting is a scan of every matching router (3.7 ms of CPU at 10k routers, ~60 ms at 100k on the
bench machine), while a page is one index walk of `limit` rows: a portal paging at 200 requests a
second would spend its CPU recounting the same fleet. So each scope's count is kept
`TOTAL_SECONDS`, and requests that arrive while it is being counted wait for that one count
instead of starting their own. A scope asked for steadily is recounted in the background:
once its total is over `TOTAL_SECONDS` old, the next request starts the recount and, like every
request until it lands, is answered the total it replaces, so under load no request waits for a
scan. A total over `STALE_SECONDS` old (a scope asked for now and then, or recounts failing) is
not answered: that request waits for the count, as the first one for a scope does. The page
itself is always read fresh; only `total` may lag a change, by up to `STALE_SECONDS` (docs/api.md
says so).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from cachetools import LRUCache

TOTAL_SECONDS: Final = 5.0
"""How long a listing's total is reused before it is recounted."""

STALE_SECONDS: Final = 2 * TOTAL_SECONDS
"""How old a total may be and still be answered while its recount runs; past that, callers wait
for the count in progress."""

log = logging.getLogger(__name__)

Key = tuple[frozenset[str] | None, frozenset[str] | None]
Count = Callable[[frozenset[str] | None, frozenset[str] | None], Awaitable[int]]


class Totals:
    """Router totals per (organisations, states) scope, shared by every caller of that scope."""

    def __init__(
        self,
        count: Count,
        *,
        seconds: float = TOTAL_SECONDS,
        stale: float = STALE_SECONDS,
        scopes: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._seconds = seconds
        self._stale = stale
        self._clock = clock
        # (when counted, total) per scope, kept from when a count finished (not started): a
        # slow count is not started twice. The least recently asked scopes go first.
        self._kept: LRUCache[Key, tuple[float, int]] = LRUCache(scopes)
        self._counting: dict[Key, asyncio.Task[int]] = {}

    async def get(
        self, organisations: Collection[str] | None, states: Collection[str] | None
    ) -> int:
        """The scope's total: the one counted in the last `seconds`; else, while a recount runs
        (started now if none is), the last one if it is under `stale` seconds old; else the new
        count's (shared with every request that asks meanwhile). A failed count is not kept."""
        key = (
            None if organisations is None else frozenset(organisations),
            None if states is None else frozenset(states),
        )
        kept = self._kept.get(key)
        age = self._clock() - kept[0] if kept is not None else float("inf")
        if kept is not None and age < self._seconds:
            return kept[1]
        task = self._counting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._count(*key))
            self._counting[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        if kept is not None and age < self._stale:
            return kept[1]
        # shield: one caller giving up (client gone) must not cancel the count the others share.
        return await asyncio.shield(task)

    def _settled(self, key: Key, task: asyncio.Task[int]) -> None:
        self._counting.pop(key, None)
        # Reading the exception also marks it seen: a background recount that failed is not
        # reported again as "never retrieved". One that nobody awaited is logged here; one a
        # request awaited also answers that request with the error.
        if task.cancelled():
            return
        failure = task.exception()
        if failure is None:
            self._kept[key] = (self._clock(), task.result())
        else:
            log.warning("a listing total could not be counted: %s", failure)
