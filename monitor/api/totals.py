"""The `total` of a router listing, counted at most once per scope every few seconds.

Counting is a scan of every matching router (3.7 ms of CPU at 10k routers, growing with the fleet,
in SQLite on the polling process), while a page is one index walk of `limit` rows: a portal paging
at 200 requests a second would spend its CPU recounting the same fleet. So each scope's count is
kept `TOTAL_SECONDS`, and requests that arrive while it is being counted wait for that one count
instead of starting their own. The page itself is always read fresh; only `total` may lag a change
by up to `TOTAL_SECONDS` (docs/api.md says so).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from cachetools import TTLCache

TOTAL_SECONDS: Final = 5.0
"""How long a listing's total is reused."""

Key = tuple[frozenset[str] | None, frozenset[str] | None]
Count = Callable[[frozenset[str] | None, frozenset[str] | None], Awaitable[int]]


class Totals:
    """Router totals per (organisations, states) scope, shared by every caller of that scope."""

    def __init__(
        self,
        count: Count,
        *,
        seconds: float = TOTAL_SECONDS,
        scopes: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        # Kept from when a count finished (not started): a slow count is not started twice.
        self._kept: TTLCache[Key, int] = TTLCache(scopes, seconds, timer=clock)
        self._counting: dict[Key, asyncio.Task[int]] = {}

    async def get(
        self, organisations: Collection[str] | None, states: Collection[str] | None
    ) -> int:
        """The scope's total: the one counted in the last `seconds`, or a new count (shared
        with every request that asks meanwhile). A failed count is not kept."""
        key = (
            None if organisations is None else frozenset(organisations),
            None if states is None else frozenset(states),
        )
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        task = self._counting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._count(*key))
            self._counting[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        # shield: one caller giving up (client gone) must not cancel the count the others share.
        return await asyncio.shield(task)

    def _settled(self, key: Key, task: asyncio.Task[int]) -> None:
        self._counting.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self._kept[key] = task.result()
