"""A listing's total is counted once per scope per few seconds, shared by concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from monitor.api.totals import Totals


class Counter:
    """A count that takes a while, records what it was asked and can be made to fail."""

    def __init__(self) -> None:
        self.asked: list[tuple[frozenset[str] | None, frozenset[str] | None]] = []
        self.value = 10
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(
        self, organisations: frozenset[str] | None, states: frozenset[str] | None
    ) -> int:
        self.asked.append((organisations, states))
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("database gone")
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_requests_share_one_count() -> None:
    count = Counter()
    count.gate.clear()
    totals = Totals(count)
    waiting = [asyncio.create_task(totals.get({"la-1"}, None)) for _ in range(50)]
    await asyncio.sleep(0)
    count.gate.set()
    assert await asyncio.gather(*waiting) == [10] * 50
    assert count.asked == [(frozenset({"la-1"}), None)]


async def test_each_scope_is_counted_on_its_own() -> None:
    count = Counter()
    totals = Totals(count)
    await totals.get({"la-1"}, None)
    await totals.get({"la-1"}, {"offline"})
    await totals.get(None, None)
    await totals.get(["la-1"], None)  # the same scope, however it is given
    assert len(count.asked) == 3


async def settle() -> None:
    """Let the tasks started so far run to their end (a background recount)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_total_is_kept_for_its_seconds_then_recounted_in_the_background() -> None:
    count, clock = Counter(), Clock()
    totals = Totals(count, seconds=5.0, clock=clock)
    assert await totals.get(None, None) == 10
    count.value = 11
    clock.now += 4.9
    assert await totals.get(None, None) == 10
    assert len(count.asked) == 1
    clock.now += 0.2
    count.gate.clear()  # the recount takes a while: requests meanwhile get the last total
    answers = [await asyncio.wait_for(totals.get(None, None), 1.0) for _ in range(20)]
    assert answers == [10] * 20
    await settle()
    assert len(count.asked) == 2  # one recount, shared
    count.gate.set()
    await settle()
    assert await totals.get(None, None) == 11
    assert len(count.asked) == 2


async def test_a_scope_asked_for_now_and_then_waits_for_a_fresh_count() -> None:
    count, clock = Counter(), Clock()
    totals = Totals(count, clock=clock)  # 5 s kept, answered while recounted until 10 s old
    assert await totals.get(None, None) == 10
    count.value = 11
    count.gate.clear()
    clock.now += 30.0  # an LA's user reloading every 30 s
    waiting = asyncio.create_task(totals.get(None, None))
    await settle()
    assert not waiting.done()  # it waits for the count rather than answer a 30 s old total
    count.gate.set()
    assert await waiting == 11


async def test_while_recounts_fail_the_last_total_is_answered_until_stale() -> None:
    count, clock = Counter(), Clock()
    totals = Totals(count, seconds=5.0, stale=60.0, clock=clock)
    assert await totals.get(None, None) == 10
    count.fail = True
    clock.now += 30.0
    assert await totals.get(None, None) == 10
    await settle()  # that recount failed, and is not kept
    clock.now += 29.0
    assert await totals.get(None, None) == 10
    await settle()
    clock.now += 2.0  # 61 s old: the failure is the answer
    with pytest.raises(RuntimeError, match="database gone"):
        await totals.get(None, None)
    assert len(count.asked) == 4


async def test_a_failed_count_is_not_kept() -> None:
    count = Counter()
    count.fail = True
    totals = Totals(count)
    with pytest.raises(RuntimeError, match="database gone"):
        await totals.get(None, None)
    count.fail = False
    assert await totals.get(None, None) == 10
    assert len(count.asked) == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_count() -> None:
    count = Counter()
    count.gate.clear()
    totals = Totals(count)
    impatient = asyncio.create_task(totals.get(None, None))
    patient = asyncio.create_task(totals.get(None, None))
    await asyncio.sleep(0)
    impatient.cancel()
    count.gate.set()
    assert await patient == 10
    assert impatient.cancelled()
    assert len(count.asked) == 1


async def test_a_count_slower_than_its_seconds_is_not_started_twice() -> None:
    count, clock = Counter(), Clock()
    count.gate.clear()
    totals = Totals(count, seconds=5.0, clock=clock)
    first = asyncio.create_task(totals.get(None, None))
    await asyncio.sleep(0)
    clock.now += 60.0  # the count is still running a minute later
    second = asyncio.create_task(totals.get(None, None))
    await asyncio.sleep(0)
    count.gate.set()
    assert await asyncio.gather(first, second) == [10, 10]
    clock.now += 4.9  # kept from when it finished
    assert await totals.get(None, None) == 10
    assert len(count.asked) == 1
