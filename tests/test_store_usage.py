"""UsageStore on SQLite and PostgreSQL: state and month totals, written together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.model import (
    Counter,
    CounterType,
    Device,
    DeviceKind,
    Organisation,
    OrganisationKind,
    Router,
    UptimeClock,
    UsageDelta,
    UsageState,
)
from monitor.store import Inventory, UsageStore

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
ICCID = "8944110000000000011"


@pytest.fixture
def usage(migrated: Engine) -> UsageStore:
    inventory = Inventory(migrated)
    device = Device("S-1", DeviceKind.ROUTER, "la-1", "ORD-1", imei="867098031000017")
    inventory.sync_config(
        [Organisation("la-1", "LA", OrganisationKind.LOCAL_AUTHORITY)],
        [Router("r-1", device, ICCID)],
    )
    return UsageStore(migrated)


def state(at: datetime, received: int, **changes: object) -> UsageState:
    values: dict[str, object] = {
        "router_id": "r-1",
        "at": at,
        "iccid": ICCID,
        "received": Counter(received, CounterType.COUNTER64),
        "sent": Counter(7, CounterType.INTEGER32),
        "uptime_seconds": 3600.5,
        "uptime_clock": UptimeClock.SYS_UPTIME,
        "month_received": 10**12,
        "month_sent": 5,
        "month_cleared": "2026-11-01",
        "recent_rate": 1234.5,
    }
    values.update(changes)
    return UsageState(**values)  # type: ignore[arg-type]


def test_state_round_trips_exactly(usage: UsageStore) -> None:
    top = 2**64 - 1  # the largest Counter64: beyond a signed BIGINT
    saved = state(T0, top)
    usage.record(saved, [], T0, "2026-11")
    assert usage.load_states() == {"r-1": saved}
    assert usage.load_states(["nobody"]) == {}
    bare = UsageState("r-1", T0 + timedelta(minutes=1))
    usage.record(bare, [], T0, "2026-11")
    assert usage.load_states()["r-1"] == bare


def test_deltas_add_up_per_month_and_sim(usage: UsageStore) -> None:
    usage.record(
        state(T0, 100), [UsageDelta("r-1", ICCID, "2026-11", 100, 10, partial=True)], T0, "2026-11"
    )
    later = T0 + timedelta(hours=2)
    usage.record(
        state(later, 400),
        [
            UsageDelta("r-1", ICCID, "2026-11", 50, 5),
            UsageDelta("r-1", ICCID, "2026-12", 250, 25),
            UsageDelta("r-1", None, "2026-12", 1, 0),
        ],
        later,
        "2026-12",
    )
    months = usage.months("r-1")
    assert [(m.iccid, m.month, m.received, m.sent, m.partial) for m in months] == [
        (ICCID, "2026-11", 150, 15, True),
        (None, "2026-12", 1, 0, False),
        (ICCID, "2026-12", 250, 25, False),
    ]
    november = usage.sim_month(ICCID, "2026-11")
    assert november is not None
    assert (november.total, november.partial, november.updated_at) == (165, True, later)
    assert usage.sim_month(ICCID, "2027-01") is None


def test_a_failed_write_changes_nothing(usage: UsageStore) -> None:
    usage.record(state(T0, 100), [UsageDelta("r-1", ICCID, "2026-11", 100, 0)], T0, "2026-11")
    later = T0 + timedelta(minutes=5)
    bad = [UsageDelta("r-1", ICCID, "2026-11", 50, 0), UsageDelta("r-1", ICCID, "2026-12", -1, 0)]
    with pytest.raises(StoreError, match="recording usage of r-1"):
        usage.record(state(later, 150), bad, later, "2026-11")
    # Neither the new readings nor the first delta were kept: the next poll recounts them.
    assert usage.load_states()["r-1"].at == T0
    assert [(m.month, m.received) for m in usage.months("r-1")] == [("2026-11", 100)]


def test_state_needs_a_router_in_the_inventory(usage: UsageStore) -> None:
    with pytest.raises(StoreError):
        usage.record(UsageState("ghost", T0), [], T0, "2026-11")
    assert "ghost" not in usage.load_states()


def test_record_returns_what_the_cap_counts(usage: UsageStore, migrated: Engine) -> None:
    device = Device("S-2", DeviceKind.ROUTER, "la-1", "ORD-2", imei="867098031000025")
    Inventory(migrated).sync_config([], [Router("r-2", device)])
    first = usage.record(state(T0, 5), [UsageDelta("r-1", ICCID, "2026-11", 5, 1)], T0, "2026-11")
    assert first is not None
    assert (first.total, first.partial) == (6, False)
    # The SIM moves to r-2: the cap counts both routers' bytes for it, read in the same write.
    moved = UsageState("r-2", T0, ICCID)
    both = usage.record(moved, [UsageDelta("r-2", ICCID, "2026-11", 7, 0, True)], T0, "2026-11")
    assert both is not None
    assert (both.total, both.partial) == (13, True)
    # A router that reports no ICCID is capped on its own month.
    alone = UsageState("r-2", T0 + timedelta(minutes=1))
    own = usage.record(alone, [UsageDelta("r-2", None, "2026-11", 3, 0)], T0, "2026-11")
    assert own is not None
    assert own.total == 3
    assert usage.record(alone, [], T0, "2026-12") is None
