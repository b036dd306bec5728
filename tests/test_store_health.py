"""HealthStore on SQLite and PostgreSQL: state and transition, together; reloads exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.model import (
    Device,
    DeviceKind,
    Health,
    HealthState,
    Organisation,
    OrganisationKind,
    Router,
    Transition,
)
from monitor.store import HealthStore, Inventory

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


@pytest.fixture
def health(migrated: Engine) -> HealthStore:
    device = Device("S-1", DeviceKind.ROUTER, "la-1", "ORD-1", imei="867098031000017")
    Inventory(migrated).sync_config(
        [Organisation("la-1", "LA", OrganisationKind.LOCAL_AUTHORITY)], [Router("r-1", device)]
    )
    return HealthStore(migrated)


def test_state_and_transitions_round_trip(health: HealthStore) -> None:
    pending = HealthState("r-1", Health.ONLINE, T0, Health.WAN_DOWN, T0 + timedelta(minutes=1),
                          T0 + timedelta(minutes=2))  # fmt: skip
    health.record(pending, None)
    assert health.load_states() == {"r-1": pending}
    later = T0 + timedelta(minutes=4)
    down = HealthState("r-1", Health.WAN_DOWN, later, last_at=later)
    change = Transition("r-1", later, Health.ONLINE, Health.WAN_DOWN, "mobile link down for 3m")
    health.record(down, change)
    assert health.load_states(["r-1"]) == {"r-1": down}
    back = Transition("r-1", later + timedelta(minutes=9), Health.WAN_DOWN, Health.ONLINE, "up")
    health.record(HealthState("r-1", Health.ONLINE, back.at, last_at=back.at), back)
    assert health.transitions("r-1") == [back, change]
    assert health.transitions("r-1", limit=1) == [back]


def test_unknown_router_is_refused_and_nothing_written(health: HealthStore) -> None:
    ghost = HealthState("ghost", Health.UNREACHABLE, T0)
    change = Transition("ghost", T0, Health.UNKNOWN, Health.UNREACHABLE, "no answer for 5m")
    with pytest.raises(StoreError, match="recording health of ghost"):
        health.record(ghost, change)
    assert health.transitions("ghost") == []
