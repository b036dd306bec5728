"""Poll results stored behind the poll path: batched, kept through a database outage, flushed
on stop; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import SessionTransaction

from monitor.errors import StoreError
from monitor.logs import aborted_pipeline, configure_logging
from monitor.model import (
    Counter,
    CounterType,
    Device,
    DeviceKind,
    Health,
    HealthState,
    Organisation,
    OrganisationKind,
    Router,
    Transition,
    UsageDelta,
    UsageState,
)
from monitor.store import HealthStore, Inventory, UsageStore
from monitor.store.batch import BatchResult, BatchWriter, PendingWrites, RouterWrites
from monitor.store.usage import cap_key
from monitor.writeback import WriteBehind

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
MONTH = "2026-11"
SIM = "8944110000000000011"
ROUTERS = [f"r-{n}" for n in range(20)]


@pytest.fixture
def db(migrated: Engine) -> Engine:
    device = [Device(f"S-{r}", DeviceKind.ROUTER, "la-1", f"ORD-{r}") for r in ROUTERS]
    Inventory(migrated).sync_config(
        [Organisation("la-1", "LA", OrganisationKind.LOCAL_AUTHORITY)],
        [Router(r, d, f"{SIM}{n}") for n, (r, d) in enumerate(zip(ROUTERS, device, strict=True))],
    )
    return migrated


def usage(router_id: str, minute: int, total: int, iccid: str | None = None) -> UsageState:
    at = T0 + timedelta(minutes=minute)
    counter = Counter(total, CounterType.COUNTER64)
    return UsageState(router_id, at, iccid, counter, Counter(0, CounterType.COUNTER64))


def queue_minute(writes: WriteBehind, minute: int, received: int = 1000) -> None:
    """One poll of every router: new readings and `received` bytes counted from the readings
    of the minute before (none before minute 0)."""
    base = T0 + timedelta(minutes=minute - 1) if minute else None
    for n, router_id in enumerate(ROUTERS):
        iccid = f"{SIM}{n}"
        state = usage(router_id, minute, received * (minute + 1), iccid)
        delta = UsageDelta(router_id, iccid, MONTH, received, 0)
        writes.add_usage(state, [delta], state.at, MONTH, base)


def stored_totals(engine: Engine) -> dict[str, int]:
    store = UsageStore(engine)
    return {r: sum(m.total for m in store.months(r)) for r in ROUTERS}


async def test_queued_results_are_stored_in_one_batch(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    for minute in range(3):
        queue_minute(writes, minute)
    assert len(writes.pending) == len(ROUTERS)  # coalesced: one entry per router
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 0)  # nothing written on the poll path
    assert await writes.flush()
    assert writes.batches == 1
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 3000)
    states = UsageStore(db).load_states()
    assert {states[r].at for r in ROUTERS} == {T0 + timedelta(minutes=2)}  # the newest readings
    # What the cap counts: the stored total, re-read in the batch, plus nothing queued.
    key = cap_key("r-0", f"{SIM}0", MONTH)
    total = writes.cap_total(key, "r-0")
    assert total is not None
    assert total.total == 3000
    await writes.close()


async def test_cap_total_adds_queued_bytes_to_the_stored_total(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    queue_minute(writes, 0)
    assert await writes.flush()
    queue_minute(writes, 1, received=500)
    total = writes.cap_total(cap_key("r-3", f"{SIM}3", MONTH), "r-3")
    assert total is not None
    assert total.total == 1500  # 1000 stored + 500 queued, never twice
    assert await writes.flush()
    again = writes.cap_total(cap_key("r-3", f"{SIM}3", MONTH), "r-3")
    assert again is not None
    assert again.total == 1500
    await writes.close()


async def test_a_database_outage_keeps_every_result_and_says_so_once(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.writeback")
    # No write but the test's own: the writer task's retry (1 s after a failure) would count
    # a sixth error when the five flushes below take longer than that (CI, PostgreSQL).
    writes = WriteBehind(BatchWriter(db), every=3600.0, trigger=10_000, retry=(3600.0, 3600.0))
    queue_minute(writes, 0)
    assert await writes.flush()
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE usage_months RENAME TO usage_months_away"))
    for minute in range(1, 6):
        queue_minute(writes, minute)
        assert not await writes.flush()
    assert writes.errors == 5
    assert len(writes.pending) == len(ROUTERS)  # bounded: one entry per router, not per poll
    assert caplog.text.count("cannot store poll results") == 1
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE usage_months_away RENAME TO usage_months"))
    assert await writes.flush()
    assert "storing poll results again" in caplog.text
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 6000)  # no byte lost, none twice
    assert not writes.pending
    await writes.close()


async def test_close_stores_what_is_queued(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), every=3600.0, trigger=10_000)
    queue_minute(writes, 0)
    health = HealthState("r-1", Health.UNREACHABLE, T0, last_at=T0)
    writes.add_health(health, Transition("r-1", T0, Health.ONLINE, Health.UNREACHABLE, "no answer"))
    await writes.close()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)
    assert HealthStore(db).load_states()["r-1"].state is Health.UNREACHABLE
    assert HealthStore(db).transitions("r-1")[0].to_state is Health.UNREACHABLE


async def test_the_writer_flushes_by_itself(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), every=0.01, trigger=5)
    queue_minute(writes, 0)  # more than `trigger` routers waiting: written without a flush()
    for _ in range(500):  # bounded wait for the writer task, no timing asserted
        if not writes.pending and writes.batches:
            break
        await asyncio.sleep(0.01)
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)
    await writes.close()


async def test_a_router_gone_from_the_inventory_does_not_block_the_others(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    queue_minute(writes, 0)
    ghost = usage("ghost", 0, 5)
    writes.add_usage(ghost, [UsageDelta("ghost", None, MONTH, 5, 0)], ghost.at, MONTH)
    assert await writes.flush()  # the ghost's rows are refused and dropped, the rest stored
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)
    assert not writes.pending
    await writes.close()


def test_pending_writes_coalesce_and_keep_order_when_put_back() -> None:
    pending = PendingWrites(max_transitions=2)
    for minute in range(3):
        state = usage("r-1", minute, minute)
        pending.add_usage(state, [UsageDelta("r-1", SIM, MONTH, 10, 1, minute == 0)], T0, MONTH)
    pending.add_usage(usage("r-2", 0, 0), [], T0, MONTH)
    batch = pending.take(1)
    assert [entry.router_id for entry in batch] == ["r-1"]
    first = batch[0]
    assert first.usage is not None
    assert first.usage.at == T0 + timedelta(minutes=2)
    assert first.deltas() == [UsageDelta("r-1", SIM, MONTH, 30, 3, True)]
    pending.add_usage(usage("r-1", 3, 3), [UsageDelta("r-1", SIM, MONTH, 10, 0)], T0, MONTH)
    pending.put_back(batch)  # a failed write: older bytes join the newer ones, ahead of r-2
    again = pending.take(10)
    assert [entry.router_id for entry in again] == ["r-1", "r-2"]
    assert again[0].usage is not None
    assert again[0].usage.at == T0 + timedelta(minutes=3)
    assert again[0].deltas() == [UsageDelta("r-1", SIM, MONTH, 40, 3, True)]
    # The transition history is capped; states are always kept.
    for n in range(3):
        change = Transition("r-1", T0, Health.ONLINE, Health.UNREACHABLE, f"#{n}")
        kept = pending.add_health(HealthState("r-1", Health.UNREACHABLE, T0), change)
        assert kept is (n < 2)
    assert pending.dropped_transitions == 1


# -- One router's bad rows, surprises in the writer, commits in doubt, the transition cap --


def poison(writes: WriteBehind, router_id: str, minute: int) -> None:
    """Bytes the database cannot hold (beyond a signed 64-bit integer) for one router."""
    state = usage(router_id, minute, 1000 * (minute + 1), f"{SIM}{ROUTERS.index(router_id)}")
    delta = UsageDelta(router_id, state.iccid, MONTH, 2**63, 0)
    base = T0 + timedelta(minutes=minute - 1)
    writes.add_usage(state, [delta], state.at, MONTH, base)


async def test_rows_the_database_refuses_are_dropped_for_that_router_only(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.writeback")
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    queue_minute(writes, 0)
    assert await writes.flush()
    queue_minute(writes, 1)
    poison(writes, "r-3", 1)  # a data error (not an integrity error), on both databases
    poison(writes, "r-11", 1)
    assert await writes.flush()  # never held up: the others are stored, in one transaction
    assert not writes.pending
    assert writes.errors == 0
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 2000) | {"r-3": 1000, "r-11": 1000}
    dropped = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(dropped) == 2
    assert dropped[0].startswith("router r-3: poll results dropped")
    assert str(2**63) not in caplog.text  # no values, no SQL, no parameters in the log
    # The next poll of a dropped router stores its readings again, without the bytes counted
    # from the dropped readings (counted low, never twice); the one after counts again.
    queue_minute(writes, 2)
    assert await writes.flush()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 3000) | {"r-3": 1000, "r-11": 1000}
    queue_minute(writes, 3)
    assert await writes.flush()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 4000) | {"r-3": 2000, "r-11": 2000}
    await writes.close()


async def test_a_refusal_is_said_once_with_the_daemons_logging(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # psycopg warns "pipeline aborted" after the writer has already said which router and why;
    # configure_logging (what `monitor run` does) keeps that repeat out of the log.
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "text")
        root.addHandler(caplog.handler)
        writes = WriteBehind(BatchWriter(db), trigger=10_000)
        queue_minute(writes, 0)
        assert await writes.flush()
        queue_minute(writes, 1)
        poison(writes, "r-3", 1)
        assert await writes.flush()
        await writes.close()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("psycopg").removeFilter(aborted_pipeline)
    assert "router r-3: poll results dropped, the database refused them" in caplog.text
    assert "pipeline aborted" not in caplog.text


async def test_an_over_long_iccid_is_refused_for_that_router_only(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    queue_minute(writes, 0)
    junk = "8944" + "1" * 26  # (the tracker never passes this on: tests/test_tracking.py)
    state = usage("r-0", 1, 5000, junk)
    writes.add_usage(state, [UsageDelta("r-0", junk, MONTH, 5, 0)], state.at, MONTH, T0)
    assert await writes.flush()
    totals = stored_totals(db)
    assert {totals[r] for r in ROUTERS[1:]} == {1000}
    # SQLite does not enforce VARCHAR lengths; PostgreSQL refuses: r-0 alone is dropped.
    assert totals["r-0"] == (0 if db.dialect.name == "postgresql" else 1005)
    await writes.close()


async def test_a_database_away_still_keeps_the_whole_batch(db: Engine) -> None:
    # Not a row's fault (the table is missing: OperationalError on SQLite, ProgrammingError on
    # PostgreSQL): nothing is dropped, everything is retried.
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE usage_state RENAME TO usage_state_away"))
    queue_minute(writes, 0)
    assert not await writes.flush()
    assert len(writes.pending) == len(ROUTERS)
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE usage_state_away RENAME TO usage_state"))
    assert await writes.flush()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)
    await writes.close()


async def wait_until_stored(writes: WriteBehind, db: Engine, total: int) -> None:
    for _ in range(500):  # bounded wait for the writer task, no timing asserted
        if not writes.pending and set(stored_totals(db).values()) == {total}:
            return
        await asyncio.sleep(0.01)


async def test_an_unexpected_error_in_the_writer_keeps_the_batch_and_the_writer(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    writer = BatchWriter(db)
    real = writer.write
    calls = []

    def flaky(batch: list[RouterWrites]) -> BatchResult:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("a bug, not a database error")
        return real(batch)

    writer.write = flaky  # type: ignore[method-assign]
    writes = WriteBehind(writer, every=0.01, trigger=5, retry=(0.01, 0.01))
    queue_minute(writes, 0)
    await wait_until_stored(writes, db, 1000)
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)  # kept and stored on the retry
    assert "a bug, not a database error" in caplog.text
    assert any(r.exc_info for r in caplog.records)  # with its traceback
    queue_minute(writes, 1)
    await wait_until_stored(writes, db, 2000)
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 2000)
    await writes.close()


async def test_an_error_after_storing_does_not_stop_the_writer(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), every=0.01, trigger=5)
    seen = []

    def on_stored(done: list[RouterWrites]) -> None:
        seen.append(len(done))
        if len(seen) == 1:
            raise ValueError("a bug in a metrics re-render")

    writes.on_stored = on_stored
    queue_minute(writes, 0)
    await wait_until_stored(writes, db, 1000)
    queue_minute(writes, 1)
    await wait_until_stored(writes, db, 2000)
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 2000)  # stored once each, not again
    # on_stored runs just after the commit the totals show: give it its turn (bounded).
    for _ in range(500):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(seen) >= 2
    await writes.close()


async def test_a_writer_that_ended_is_started_again_and_close_still_stores(db: Engine) -> None:
    writes = WriteBehind(BatchWriter(db), every=3600.0, trigger=10_000)
    queue_minute(writes, 0)
    task = writes._task
    assert task is not None
    task.cancel()
    await asyncio.wait([task])
    queue_minute(writes, 1)  # the next poll starts a writer again
    assert writes._task is not task
    assert not writes._task.done()
    writes._task.cancel()  # and close() stores the queue even if that one ended too
    await writes.close()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 2000)


async def test_a_batch_whose_commit_answer_was_lost_is_not_counted_twice(db: Engine) -> None:
    writer = BatchWriter(db)
    real = writer.write
    lost = [True]

    def commit_then_lose_the_answer(batch: list[RouterWrites]) -> BatchResult:
        result = real(batch)  # committed on the server...
        if lost.pop() if lost else False:
            raise StoreError("storing poll results: server closed the connection unexpectedly")
        return result

    writer.write = commit_then_lose_the_answer  # type: ignore[method-assign]
    writes = WriteBehind(writer, trigger=10_000)
    queue_minute(writes, 0)
    assert not await writes.flush()
    queue_minute(writes, 1)  # polled while the write was in doubt: joins the retry
    assert await writes.flush()
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 2000)  # minute 0 once, minute 1 once
    key = cap_key("r-0", f"{SIM}0", MONTH)
    total = writes.cap_total(key, "r-0")
    assert total is not None
    assert total.total == 2000
    await writes.close()


async def test_a_commit_that_fails_in_the_writer_is_in_doubt_and_applied_once(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = SessionTransaction.commit
    failures = [1]

    def commit(self: SessionTransaction, _to_root: bool = False) -> None:
        real_commit(self, _to_root)
        if not self.nested and self.parent is None and failures:
            failures.pop()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(SessionTransaction, "commit", commit)
    writer = BatchWriter(db)
    pending = PendingWrites()
    for n, router_id in enumerate(ROUTERS):
        state = usage(router_id, 0, 1000, f"{SIM}{n}")
        pending.add_usage(state, [UsageDelta(router_id, state.iccid, MONTH, 1000, 0)], T0, MONTH)
        went = Transition(router_id, T0, Health.ONLINE, Health.UNREACHABLE, "no answer")
        pending.add_health(HealthState(router_id, Health.UNREACHABLE, T0, last_at=T0), went)
    batch = pending.take(100)
    result = writer.write(batch)
    assert result.in_doubt
    assert len(result.unwritten) == len(ROUTERS)
    again = writer.write(batch)
    assert not again.unwritten
    assert sorted(again.already) == sorted(ROUTERS)
    assert stored_totals(db) == dict.fromkeys(ROUTERS, 1000)
    # The transition history too: written by the commit in doubt, not again by the retry.
    assert [len(HealthStore(db).transitions(r)) for r in ROUTERS] == [1] * len(ROUTERS)


def test_transitions_in_flight_count_against_the_cap() -> None:
    pending = PendingWrites(max_transitions=2)
    for n in range(2):
        change = Transition(f"r-{n}", T0, Health.ONLINE, Health.UNREACHABLE, "no answer")
        assert pending.add_health(HealthState(f"r-{n}", Health.UNREACHABLE, T0), change)
    batch = pending.take(10)  # in flight: still held in memory
    change = Transition("r-2", T0, Health.ONLINE, Health.UNREACHABLE, "no answer")
    assert not pending.add_health(HealthState("r-2", Health.UNREACHABLE, T0), change)
    pending.put_back(batch)  # failed: still counted
    assert not pending.add_health(HealthState("r-2", Health.UNREACHABLE, T0), change)
    batch = pending.take(10)
    pending.settled(batch)  # stored: room again
    assert pending.add_health(HealthState("r-2", Health.UNREACHABLE, T0), change)
    assert pending.dropped_transitions == 2


async def test_dropped_transitions_are_warned_once_per_episode(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.writeback")
    writes = WriteBehind(BatchWriter(db), max_transitions=1, trigger=10_000)

    def two_changes() -> None:
        for router_id in ("r-1", "r-2"):
            change = Transition(router_id, T0, Health.ONLINE, Health.UNREACHABLE, "no answer")
            writes.add_health(HealthState(router_id, Health.UNREACHABLE, T0), change)

    two_changes()
    two_changes()
    assert caplog.text.count("health transition history is being dropped") == 1
    assert await writes.flush()
    two_changes()  # a new episode: said again
    assert caplog.text.count("health transition history is being dropped") == 2
    await writes.close()
