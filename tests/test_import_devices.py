"""Importing devices from CSV: the example file, routers, validation, all-or-nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.errors import ImportRejected
from monitor.importer import import_devices, import_organisations
from monitor.model import (
    Allocation,
    Device,
    DeviceKind,
    DeviceStatus,
    Endpoint,
    Protocol,
    Router,
)
from monitor.store import Inventory, UpsertResult

CONFIG = Path(__file__).parent.parent / "config"
HEADER = "serial,kind,organisation,order_number,imei,allocation,iccid,router_id,protocol,host,port,profile\n"  # noqa: E501
ORGS = "id,name,kind,parent\nla1,LA,local_authority,\ntrust1,Trust,academy_trust,\ns1,School,school,la1\n"  # noqa: E501


def csv_text(text: str) -> io.StringIO:
    """The text as the CLI hands it over: an open text file read with newline=''."""
    return io.StringIO(text, newline="")


@pytest.fixture
def stocked(inventory: Inventory) -> Inventory:
    """An inventory holding a few organisations to own devices."""
    import_organisations(csv_text(ORGS), inventory)
    return inventory


def snapshot(inventory: Inventory) -> tuple[int, list[Router]]:
    """What an import may change, to check that a rejected one changed nothing."""
    return inventory.count_devices(), inventory.list_routers(monitored_only=False)


def rejected(text: str, inventory: Inventory) -> list[str]:
    """The problems of a rejected device import, as 'where: reason' lines."""
    with pytest.raises(ImportRejected) as caught:
        import_devices(csv_text(text), inventory, source="devices.csv")
    return [str(problem) for problem in caught.value.problems]


def test_example_files_import_and_read_back(inventory: Inventory) -> None:
    for name, importer in [("organisations", import_organisations), ("devices", import_devices)]:
        with (CONFIG / f"{name}.example.csv").open(encoding="utf-8-sig", newline="") as rows:
            importer(rows, inventory, source=name)

    assert inventory.count_devices() == 7
    assert inventory.get_device("5CD0123ABC") == Device(
        "5CD0123ABC",
        DeviceKind.WINDOWS_LAPTOP,
        "la-leeds",
        "ORD-2020-000101",
        allocation=Allocation.SOCIAL_CARE,
        order_term="2020-summer",
    )
    assert inventory.get_device("DMPXL0001").status is DeviceStatus.LOST
    rut = inventory.get_router("RUT-0001")  # router id defaults to the serial
    assert rut.endpoint == Endpoint(Protocol.SNMP, "10.20.0.11", 161, "teltonika-rutos7")
    assert rut.iccid == "8944110000000000011"
    mifi = inventory.get_router("350000000001038")  # found by IMEI
    assert mifi.id == "leeds-mifi-1"
    assert mifi.endpoint == Endpoint(Protocol.HILINK, "10.20.1.1", 8080, "huawei-hilink")
    assert inventory.get_router("E5576-0002").endpoint is None


def test_repeated_import_changes_nothing(
    stocked: Inventory, imei: Callable[[int], str], tmp_path: Path
) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(
        HEADER
        + f"R1,router,s1,O1,{imei(1)},,89441100000000000111,,snmp,10.0.0.1,,rut\n"
        + "L1,chromebook,trust1,O2,,,,,,,,\n",
        encoding="utf-8",
    )
    with path.open(newline="") as rows:
        first = import_devices(rows, stocked, source=path.name)
    before = stocked.list_routers()
    with path.open(newline="") as rows:
        second = import_devices(rows, stocked, source=path.name)

    assert first == UpsertResult(created=2)
    assert second == UpsertResult(created=0, updated=0, unchanged=2)
    assert stocked.list_routers() == before


def test_changed_rows_are_updated(stocked: Inventory, imei: Callable[[int], str]) -> None:
    import_devices(csv_text(HEADER + f"R1,router,s1,O1,{imei(1)},,,,snmp,h1,,rut\n"), stocked)

    changed = HEADER + f"R1,router,s1,O1,{imei(1)},,,,snmp,h2,,rut\n"
    result = import_devices(csv_text(changed), stocked)

    assert result == UpsertResult(updated=1)
    endpoint = stocked.get_router("R1").endpoint
    assert endpoint is not None
    assert endpoint.host == "h2"


def test_allocation_only_on_devices_of_a_local_authority(stocked: Inventory) -> None:
    text = (
        HEADER
        + "L1,windows_laptop,la1,O,,schools,,,,,,\nL2,windows_laptop,s1,O,,social_care,,,,,,\n"
    )

    assert rejected(text, stocked) == [
        "line 3, column allocation: only for devices of a local authority; s1 is a school"
    ]
    assert stocked.count_devices() == 0


def test_every_bad_row_is_listed_and_nothing_is_stored(
    stocked: Inventory, imei: Callable[[int], str]
) -> None:
    good = f"R1,router,s1,O1,{imei(1)},,,,snmp,10.0.0.1,,rut\n"
    import_devices(csv_text(HEADER + good), stocked)
    before = snapshot(stocked)
    wrong_luhn = imei(2)[:-1] + str((int(imei(2)[-1]) + 1) % 10)
    text = (
        HEADER
        + good.replace("10.0.0.1", "10.0.0.2")  # line 2: fine, yet must not be stored
        + "L1,laptop,s1,O,,,,,,,,\n"  # line 3
        + "R2,router,s1,O,,,,,,,,\n"  # line 4: no IMEI
        + f"R3,router,s1,O,{wrong_luhn},,123,,snmp,,99999,rut\n"  # line 5
        + "L2,chromebook,nowhere,O,,,8944110000000000011,,,,,\n"  # line 6
        + f"R1,router,s1,O,{imei(1)},,,,hilink,bad host!,80,x\n"  # line 7: duplicate serial, IMEI
        + f"R4,router,s1,O,{imei(4)},,,R1,,,,\n"  # line 8: router id R1 taken by R1
    )

    assert rejected(text, stocked) == [
        "line 3, column kind: 'laptop' is not one of windows_laptop, windows_tablet,"
        " chromebook, ipad, router",
        "line 4, column imei: is required for a router",
        "line 5, column imei: check digit is wrong (Luhn): is a digit mistyped?",
        "line 5, column iccid: must be a SIM ICCID: 18 to 22 digits starting with 89",
        "line 5, column host: is required when any of protocol, host, port, profile is",
        "line 5, column port: must be a number from 1 to 65535",
        "line 6, column organisation: no organisation nowhere is stored: import it first",
        "line 6, column iccid: only for routers (kind router)",
        "line 7, column serial: R1 is already on line 2",
        f"line 7, column imei: {imei(1)} is already on line 2",
        "line 7, column router_id: R1 is already on line 2",
        "line 7, column host: must be a hostname or an IP address",
        "line 8, column router_id: R1 is already on line 2",
        "line 8, column router_id: R1 is already the router id of device R1",
    ]
    assert snapshot(stocked) == before


def test_routers_with_and_without_endpoint(stocked: Inventory, imei: Callable[[int], str]) -> None:
    text = (
        HEADER
        + f"SN1,router,la1,O,{imei(1)},social_care,8944110000000000011,mifi-1,HiLink,fe80::1,,e5576\n"  # noqa: E501
        + f"SN2,router,trust1,O,{imei(2)},,,,,,,\n"
    )

    assert import_devices(csv_text(text), stocked) == UpsertResult(created=2)

    mifi = stocked.get_router("mifi-1")
    assert mifi.device.serial == "SN1"
    assert mifi.device.allocation is Allocation.SOCIAL_CARE
    assert mifi.endpoint == Endpoint(Protocol.HILINK, "fe80::1", 80, "e5576")
    assert stocked.get_router("SN2").endpoint is None
    assert [r.id for r in stocked.list_routers()] == ["SN2", "mifi-1"]


def test_missing_required_columns_and_values(stocked: Inventory) -> None:
    assert rejected("serial,kind\nX,ipad\n", stocked) == [
        "line 1: the required column organisation is missing",
        "line 1: the required column order_number is missing",
    ]
    assert rejected("serial,kind,organisation,order_number\n,ipad,s1, \n", stocked) == [
        "line 2, column serial: is required",
        "line 2, column order_number: is required",
    ]


def test_progress_is_reported(stocked: Inventory) -> None:
    seen: list[int] = []
    text = HEADER + "".join(f"L{n},ipad,s1,O,,,,,,,,\n" for n in range(3))

    import_devices(csv_text(text), stocked, seen.append)

    assert seen[-1] == 3
