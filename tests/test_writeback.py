"""Poll results stored behind the poll path: batched, kept through a database outage, flushed
on stop; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

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
from monitor.store.batch import BatchWriter, PendingWrites
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
    """One poll of every router: new readings and `received` bytes counted."""
    for n, router_id in enumerate(ROUTERS):
        iccid = f"{SIM}{n}"
        state = usage(router_id, minute, received * (minute + 1), iccid)
        delta = UsageDelta(router_id, iccid, MONTH, received, 0)
        writes.add_usage(state, [delta], state.at, MONTH)


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
    writes = WriteBehind(BatchWriter(db), trigger=10_000)
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
