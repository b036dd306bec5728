"""The scheduler's rhythm: offsets, one poll per router at a time, concurrency, deadlines.

The collector here is a stand-in that records when it was called: the scheduler's contract is
about timing, which a real router cannot be made to show on demand. The collectors themselves
are tested against emulated routers elsewhere.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.metrics import DaemonMetrics
from monitor.model import (
    Endpoint,
    FailureKind,
    PollFailure,
    PollResult,
    PollTarget,
    Protocol,
    Sample,
)
from monitor.scheduler import Scheduler, offset_fraction


def target(router_id: str, protocol: Protocol = Protocol.SNMP) -> PollTarget:
    return PollTarget(router_id, Endpoint(protocol, "127.0.0.1", 161, "if-mib"))


class RecordingCollector:
    """Answers after `delay` seconds (or raises), recording start times and concurrency."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.started: dict[str, list[float]] = collections.defaultdict(list)
        self.active: collections.Counter[str] = collections.Counter()
        self.most_at_once = 0
        self.same_router_overlap = False

    async def poll(self, target: PollTarget, timeout: float) -> PollResult:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        self.started[target.router_id].append(loop.time())
        if self.active[target.router_id]:
            self.same_router_overlap = True
        self.active[target.router_id] += 1
        self.most_at_once = max(self.most_at_once, sum(self.active.values()))
        try:
            await asyncio.sleep(self.delay)
            if self.error:
                raise self.error
            return Sample(target.router_id, datetime.now(UTC))
        finally:
            self.active[target.router_id] -= 1

    async def aclose(self) -> None:
        return None


def scheduler(
    targets: list[PollTarget],
    collector: RecordingCollector | dict[Protocol, RecordingCollector],
    results: list[PollResult],
    *,
    interval: float = 0.4,
    timeout: float = 0.2,
    concurrency: int = 100,
) -> tuple[Scheduler, DaemonMetrics]:
    metrics = DaemonMetrics(CollectorRegistry())

    async def source() -> list[PollTarget]:
        return targets

    async def sink(_: PollTarget, result: PollResult) -> None:
        results.append(result)

    loop_time = asyncio.get_running_loop().time
    return (
        Scheduler(
            source,
            collector if isinstance(collector, dict) else {Protocol.SNMP: collector},
            sink,
            metrics,
            interval=timedelta(seconds=interval),
            timeout=timedelta(seconds=timeout),
            concurrency=concurrency,
            clock=loop_time,
        ),
        metrics,
    )


def sample(metrics: DaemonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def run_for(s: Scheduler, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


def test_offsets_are_stable_and_spread() -> None:
    assert offset_fraction("rut-0042") == offset_fraction("rut-0042")
    buckets = collections.Counter(int(offset_fraction(f"r-{i}") * 10) for i in range(10_000))
    assert set(buckets) == set(range(10))
    assert all(800 < count < 1200 for count in buckets.values()), buckets


async def test_each_router_polled_once_per_interval_on_its_offset() -> None:
    collector = RecordingCollector()
    results: list[PollResult] = []
    targets = [target(f"r-{i}") for i in range(20)]
    s, metrics = scheduler(targets, collector, results, interval=0.5)
    await run_for(s, 2.6)
    for t in targets:
        starts = collector.started[t.router_id]
        assert 4 <= len(starts) <= 6, (t.router_id, starts)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(0.4 < gap < 0.6 for gap in gaps), gaps
        # the phase within the interval is the router's own offset
        phase = starts[0] % 0.5
        expected = offset_fraction(t.router_id) * 0.5
        assert min(abs(phase - expected), 0.5 - abs(phase - expected)) < 0.08
    assert all(isinstance(r, Sample) for r in results)
    assert sample(metrics, "router_monitor_polls_total", result="success") == len(results)


async def test_a_slow_router_overruns_instead_of_piling_up() -> None:
    collector = RecordingCollector(delay=0.9)
    results: list[PollResult] = []
    s, metrics = scheduler([target("slow")], collector, results, interval=0.3, timeout=2.0)
    await run_for(s, 2.0)
    assert not collector.same_router_overlap
    assert sample(metrics, "router_monitor_poll_overruns_total") >= 3
    assert len(collector.started["slow"]) <= 3


async def test_concurrency_is_bounded() -> None:
    collector = RecordingCollector(delay=0.15)
    results: list[PollResult] = []
    targets = [target(f"r-{i}") for i in range(40)]
    s, _ = scheduler(targets, collector, results, interval=0.3, timeout=0.25, concurrency=5)
    await run_for(s, 1.2)
    assert collector.most_at_once == 5


async def test_hung_collector_becomes_a_timeout_and_a_bug_a_bad_reply() -> None:
    hung = RecordingCollector(delay=30)
    broken = RecordingCollector(error=RuntimeError("bug"))
    results: list[PollResult] = []
    collectors = {Protocol.SNMP: hung, Protocol.HILINK: broken}
    targets = [target("a"), target("b", Protocol.HILINK)]
    s, metrics = scheduler(targets, collectors, results, interval=0.3, timeout=0.1)
    await run_for(s, 1.8)
    kinds = {r.router_id: r.kind for r in results if isinstance(r, PollFailure)}
    assert kinds == {"a": FailureKind.TIMEOUT, "b": FailureKind.BAD_REPLY}
    assert sample(metrics, "router_monitor_polls_total", result="bad_reply") >= 3


async def test_inventory_failure_keeps_polling_known_routers() -> None:
    collector = RecordingCollector()
    results: list[PollResult] = []
    s, metrics = scheduler([target("r-1")], collector, results, interval=0.3)
    calls = 0
    real_source = s._targets_source

    async def flaky() -> list[PollTarget]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("database down")
        return list(await real_source())

    s._targets_source = flaky
    await run_for(s, 1.3)
    assert sample(metrics, "router_monitor_inventory_errors_total") >= 2
    assert len(collector.started["r-1"]) >= 3


async def test_polls_keep_their_rhythm_while_the_inventory_is_re_read() -> None:
    # At 100k routers a re-read takes seconds; the polls due meanwhile must start on time, not
    # all at once when it ends.
    collector = RecordingCollector()
    results: list[PollResult] = []
    targets = [target(f"r-{i}") for i in range(20)]
    s, _ = scheduler(targets, collector, results, interval=0.4)
    reads = 0
    real_source = s._targets_source

    async def slow() -> list[PollTarget]:
        nonlocal reads
        reads += 1
        if reads > 1:
            await asyncio.sleep(0.3)  # three quarters of an interval
        return list(await real_source())

    s._targets_source = slow
    await run_for(s, 2.2)
    assert reads >= 4
    for t in targets:
        starts = collector.started[t.router_id]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(starts) >= 4, (t.router_id, starts)
        assert all(0.25 < gap < 0.55 for gap in gaps), (t.router_id, gaps)


async def test_a_hung_inventory_read_is_given_up_and_never_doubled() -> None:
    collector = RecordingCollector()
    s, metrics = scheduler([target("r-1")], collector, [], interval=0.2)
    reads = reading = most_at_once = 0
    real_source = s._targets_source

    async def hangs_after_the_first() -> list[PollTarget]:
        nonlocal reads, reading, most_at_once
        reads += 1
        reading += 1
        most_at_once = max(most_at_once, reading)
        try:
            if reads > 1:
                await asyncio.Event().wait()  # never set: the database hangs
            return list(await real_source())
        finally:
            reading -= 1

    s._targets_source = hangs_after_the_first
    await run_for(s, 1.3)
    assert most_at_once == 1
    assert sample(metrics, "router_monitor_inventory_errors_total") >= 3  # each given up
    starts = collector.started["r-1"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 5, starts
    assert all(0.1 < gap < 0.3 for gap in gaps), starts


async def test_a_bug_after_the_inventory_read_stops_the_loop_loudly() -> None:
    # Read failures are kept polling through (above); a bug in handling what was read is not
    # swallowed by the refresh's own task: run() raises it, and the daemon says so.
    s, _ = scheduler([target("r-1")], RecordingCollector(), [], interval=0.2)
    reads = 0
    real_source = s._targets_source

    async def broken_on_the_second() -> list[Any]:
        nonlocal reads
        reads += 1
        return [object()] if reads > 1 else list(await real_source())

    s._targets_source = broken_on_the_second
    with pytest.raises(AttributeError, match="router_id"):
        await run_for(s, 1.0)


async def test_stop_cancels_polls_in_flight_promptly() -> None:
    collector = RecordingCollector(delay=30)  # every poll hangs far past the stop
    targets = [target(f"r-{i}") for i in range(50)]
    s, _ = scheduler(targets, collector, [], interval=0.2, timeout=20, concurrency=50)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.sleep(0.4)
    assert sum(collector.active.values()) > 0
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    print(f"stopped with polls in flight after {loop.time() - stopped_at:.3f}s")
    assert sum(collector.active.values()) == 0


async def test_the_sink_is_drained_after_the_last_poll_stopped() -> None:
    collector = RecordingCollector(delay=30)  # polls in flight when the stop comes
    events: list[str] = []

    async def source() -> list[PollTarget]:
        return [target(f"r-{i}") for i in range(5)]

    async def sink(_: PollTarget, __: PollResult) -> None:
        events.append("result")

    async def drain() -> None:
        events.append(f"drain with {sum(collector.active.values())} polls running")

    s = Scheduler(
        source, {Protocol.SNMP: collector}, sink, DaemonMetrics(CollectorRegistry()),
        interval=timedelta(seconds=0.2), timeout=timedelta(seconds=20), concurrency=5,
        clock=asyncio.get_running_loop().time, drain=drain,
    )  # fmt: skip
    await run_for(s, 0.4)
    assert events == ["drain with 0 polls running"]


async def test_a_router_removed_and_added_back_keeps_one_turn_per_interval() -> None:
    collector = RecordingCollector()
    results: list[PollResult] = []
    present = [target("r-1")]
    s, metrics = scheduler(present, collector, results, interval=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.sleep(0.35)
    loop = asyncio.get_running_loop()
    # Gone at one refresh and back at the next, before its old turn comes round.
    present.clear()
    await s.refresh(loop.time())
    present.append(target("r-1"))
    await s.refresh(loop.time())
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    starts = collector.started["r-1"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap > 0.2 for gap in gaps), gaps
    assert sample(metrics, "router_monitor_poll_overruns_total") == 0
