"""The inventory repository on real databases: upserts, config sync and reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from monitor.errors import ConfigError, NotFound, StoreError
from monitor.model import (
    Allocation,
    Device,
    DeviceKind,
    DeviceStatus,
    Endpoint,
    Organisation,
    OrganisationKind,
    Protocol,
    Router,
)
from monitor.store import Inventory, SyncResult, UpsertResult

LA = Organisation("la-leeds", "Leeds City Council", OrganisationKind.LOCAL_AUTHORITY)
TRUST = Organisation("trust-oak", "Oak Academy Trust", OrganisationKind.ACADEMY_TRUST)
SCHOOL = Organisation("sch-1", "Hill Primary", OrganisationKind.SCHOOL, "la-leeds")


def router(
    router_id: str, imei: str, org: str = "la-leeds", host: str = "10.0.0.1", serial: str = ""
) -> Router:
    device = Device(serial or f"SN-{router_id}", DeviceKind.ROUTER, org, "ORD-1", imei)
    endpoint = Endpoint(Protocol.SNMP, host, 161, "huawei-b535")
    return Router(router_id, device, "8944000000000000001", endpoint)


class Clock:
    """A settable clock, so that updated_at can be told apart between writes."""

    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_organisations_round_trip_and_reupsert_changes_nothing(inventory: Inventory) -> None:
    first = inventory.upsert_organisations([SCHOOL, LA, TRUST])  # parent after child on purpose
    again = inventory.upsert_organisations([LA, TRUST, SCHOOL])
    renamed = inventory.upsert_organisations([Organisation("la-leeds", "Leeds", LA.kind)])

    assert first == UpsertResult(created=3)
    assert again == UpsertResult(unchanged=3)
    assert renamed == UpsertResult(updated=1)
    assert inventory.get_organisation("sch-1") == SCHOOL
    assert [org.id for org in inventory.list_organisations()] == ["la-leeds", "sch-1", "trust-oak"]
    assert inventory.organisation_kinds(["sch-1", "nope"]) == {"sch-1": OrganisationKind.SCHOOL}
    with pytest.raises(NotFound):
        inventory.get_organisation("nope")


def test_devices_and_routers_upsert_by_serial(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    inventory.upsert_organisations([LA, TRUST])
    laptop = Device(
        "LAP1",
        DeviceKind.WINDOWS_LAPTOP,
        "la-leeds",
        "ORD-9",
        allocation=Allocation.SOCIAL_CARE,
        order_term="2020-summer",
    )
    r1 = router("r1", imei(1))

    assert inventory.upsert_devices([laptop, r1]) == UpsertResult(created=2)
    assert inventory.upsert_devices([laptop, r1]) == UpsertResult(unchanged=2)
    moved = Router(r1.id, r1.device, r1.iccid, Endpoint(Protocol.HILINK, "10.0.0.9", 80, "b311"))
    lost = Device("LAP1", laptop.kind, "la-leeds", "ORD-9", status=DeviceStatus.LOST)
    assert inventory.upsert_devices([lost, moved]) == UpsertResult(updated=2)

    assert inventory.get_device("LAP1") == lost
    assert inventory.get_router("r1") == moved
    assert inventory.get_router(imei(1)) == moved  # by IMEI too
    assert inventory.router_serials(["r1", "r2"]) == {"r1": "SN-r1"}
    assert inventory.count_devices() == 2
    with pytest.raises(NotFound):
        inventory.get_device("nope")
    with pytest.raises(NotFound):
        inventory.get_router("nope")


def test_router_without_endpoint_and_router_renamed(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    inventory.upsert_organisations([LA])
    bare = Router("r1", Device("SN1", DeviceKind.ROUTER, "la-leeds", "O", imei(1)))
    inventory.upsert_devices([bare])
    renamed = Router("r1-new", bare.device)

    assert inventory.upsert_devices([renamed]) == UpsertResult(updated=1)
    assert inventory.list_routers() == [renamed]


def test_device_no_longer_a_router_loses_its_router_row(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    inventory.upsert_organisations([LA])
    r1 = router("r1", imei(1))
    inventory.upsert_devices([r1])

    as_tablet = Device(r1.device.serial, DeviceKind.WINDOWS_TABLET, "la-leeds", "ORD-1")
    assert inventory.upsert_devices([as_tablet]) == UpsertResult(updated=1)
    assert inventory.list_routers(monitored_only=False) == []


def test_router_id_of_another_device_is_refused_and_nothing_stored(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    inventory.upsert_organisations([LA])
    inventory.upsert_devices([router("r1", imei(1), serial="A")])
    newcomer = Device("C", DeviceKind.WINDOWS_LAPTOP, "la-leeds", "O")

    with pytest.raises(StoreError, match="'r1' already belongs to device A"):
        inventory.upsert_devices([newcomer, router("r1", imei(2), serial="B")])
    assert inventory.count_devices() == 1


def test_unknown_organisation_is_a_store_error(inventory: Inventory) -> None:
    with pytest.raises(StoreError):
        inventory.upsert_devices([Device("X", DeviceKind.IPAD, "nowhere", "O")])
    assert inventory.count_devices() == 0


def test_sync_config_upserts_and_unmonitors_what_left_the_config(
    migrated: Engine, imei: Callable[[int], str]
) -> None:
    clock = Clock()
    inventory = Inventory(migrated, clock)
    r1, r2 = router("r1", imei(1)), router("r2", imei(2), org="trust-oak")
    first = inventory.sync_config([LA, TRUST], [r1, r2])
    clock.now += timedelta(hours=1)
    second = inventory.sync_config([LA], [r1])  # trust-oak is stored already: still fine
    third = inventory.sync_config([LA], [r1])

    assert first == SyncResult(UpsertResult(created=2), UpsertResult(created=2), 0)
    assert second == SyncResult(UpsertResult(unchanged=1), UpsertResult(unchanged=1), 1)
    assert third == SyncResult(UpsertResult(unchanged=1), UpsertResult(unchanged=1), 0)
    assert inventory.list_routers() == [r1]
    assert [r.monitored for r in inventory.list_routers(monitored_only=False)] == [True, False]
    back = inventory.sync_config([], [r2])
    assert back.routers == UpsertResult(updated=1)
    assert back.unmonitored == 1
    assert inventory.list_routers() == [r2]


def test_sync_config_names_missing_organisations_and_stores_nothing(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    orphan = Organisation("sch-9", "Orphan School", OrganisationKind.SCHOOL, "la-gone")

    with pytest.raises(ConfigError) as caught:
        inventory.sync_config([LA, orphan], [router("r1", imei(1), org="trust-gone")])

    report = caught.value.report()
    assert "organisation sch-9, parent: organisation 'la-gone'" in report
    assert "router r1, organisation: organisation 'trust-gone'" in report
    assert inventory.list_organisations() == []


def test_import_does_not_take_over_unchanged_but_sets_source(
    inventory: Inventory, imei: Callable[[int], str]
) -> None:
    r1 = router("r1", imei(1))
    inventory.sync_config([LA], [r1])
    # The same router, imported: the row now belongs to the import, so config no longer
    # unmonitors it when it leaves the config.
    assert inventory.upsert_devices([r1]) == UpsertResult(updated=1)
    assert inventory.sync_config([LA], []).unmonitored == 0
    assert inventory.list_routers() == [r1]
