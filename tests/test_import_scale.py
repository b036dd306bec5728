"""The 100,000-row device import, on both databases: all stored, and a re-import is a no-op."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.importer import import_devices, import_organisations
from monitor.store import Inventory, UpsertResult

ROWS = 100_000
HEADER = "serial,kind,organisation,order_number,imei,order_term,iccid,protocol,host,profile\n"


def write_devices(path: Path, imei: Callable[[int], str]) -> None:
    """A realistic fleet file: every row a router with IMEI, SIM and endpoint."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for n in range(ROWS):
            org = f"s{n % 500}"
            host = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
            out.write(
                f"RTR{n:07d},router,{org},ORD-{n // 100:06d},{imei(n)},2020-autumn,"
                f"8944{n:015d},snmp,{host},teltonika-rutos7\n"
            )


@pytest.mark.slow
def test_import_of_100k_devices(
    inventory: Inventory, imei: Callable[[int], str], tmp_path: Path, database_url: str
) -> None:
    orgs = "id,name,kind,parent\nla1,LA,local_authority,\n" + "".join(
        f"s{n},School {n},school,la1\n" for n in range(500)
    )
    import_organisations(orgs.splitlines(keepends=True), inventory)
    path = tmp_path / "devices.csv"
    write_devices(path, imei)
    seen: list[int] = []

    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as rows:
        first = import_devices(rows, inventory, seen.append, source=path.name)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as rows:
        second = import_devices(rows, inventory, source=path.name)
    second_seconds = time.perf_counter() - started

    backend = database_url.split(":", 1)[0]
    print(
        f"\n{backend}: {ROWS} rows imported in {first_seconds:.1f} s, re-imported (no changes)"
        f" in {second_seconds:.1f} s"
    )
    assert first == UpsertResult(created=ROWS)
    assert second == UpsertResult(unchanged=ROWS)
    assert seen[-1] == ROWS
    assert inventory.count_devices() == ROWS
    last = inventory.get_router(f"RTR{ROWS - 1:07d}")
    assert last.device.imei == imei(ROWS - 1)
    assert len(inventory.list_routers()) == ROWS
