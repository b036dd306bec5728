"""Set-based upserts of organisations, devices and routers, inside a caller's transaction.

Rows are handled in chunks: one SELECT loads what exists for a chunk, then one multi-row INSERT
and one executemany UPDATE by primary key write only what is new or different, so re-importing
an unchanged file writes nothing and leaves `updated_at` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Table,
    any_,
    bindparam,
    cast,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor.errors import StoreError
from monitor.model import Device, Organisation, Router
from monitor.store.tables import Base, DeviceRow, OrganisationRow, RouterRow

# Small enough for SQLite's and PostgreSQL's bind-parameter limits, big enough to amortise trips.
CHUNK = 5000

T = TypeVar("T")
Progress = Callable[[int], None]

# Core inserts on the tables: the ORM's bulk insert spends more time per row than the database.
ORGANISATIONS = Base.metadata.tables[OrganisationRow.__tablename__]
DEVICES = Base.metadata.tables[DeviceRow.__tablename__]
ROUTERS = Base.metadata.tables[RouterRow.__tablename__]
Values = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """How many items an upsert created, changed, and found already as given."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Every item the upsert was given."""
        return self.created + self.updated + self.unchanged

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def organisation_values(org: Organisation) -> Values:
    """The column values of an organisation row, keyed by column name."""
    return {"id": org.id, "name": org.name, "kind": org.kind.value, "parent_id": org.parent_id}


def device_values(device: Device) -> Values:
    """The column values of a device row (without its surrogate key)."""
    return {
        "serial": device.serial,
        "kind": device.kind.value,
        "organisation_id": device.organisation_id,
        "order_number": device.order_number,
        "imei": device.imei,
        "allocation": device.allocation.value if device.allocation else None,
        "order_term": device.order_term,
        "status": device.status.value,
    }


def router_values(router: Router, source: str) -> Values:
    """The column values of a router row (without device_id)."""
    endpoint = router.endpoint
    return {
        "id": router.id,
        "iccid": router.iccid,
        "protocol": endpoint.protocol.value if endpoint else None,
        "host": endpoint.host if endpoint else None,
        "port": endpoint.port if endpoint else None,
        "profile": endpoint.profile if endpoint else None,
        "monitored": router.monitored,
        "source": source,
    }


def parents_first(orgs: Sequence[Organisation]) -> Iterator[Organisation]:
    """The organisations ordered so that a parent given in `orgs` comes before its children."""
    pending = {org.id: org for org in orgs}
    emitted: set[str] = set()

    def visit(org: Organisation, path: tuple[str, ...]) -> Iterator[Organisation]:
        if org.id in emitted:
            return
        parent = pending.get(org.parent_id) if org.parent_id else None
        if parent is not None:
            if parent.id in path:
                raise StoreError(f"organisation {org.id!r} is its own ancestor")
            yield from visit(parent, (*path, org.id))
        emitted.add(org.id)
        yield org

    for org in orgs:
        yield from visit(org, (org.id,))


def upsert_organisations(
    session: Session, orgs: Sequence[Organisation], now: datetime, progress: Progress | None
) -> UpsertResult:
    """Insert new organisations and update changed ones, parents before children."""
    created = updated = done = 0
    for chunk in batched(parents_first(orgs), CHUNK):
        wanted = {org.id: organisation_values(org) for org in chunk}
        existing = {
            row["id"]: row
            for row in session.execute(
                select(
                    OrganisationRow.id,
                    OrganisationRow.name,
                    OrganisationRow.kind,
                    OrganisationRow.parent_id,
                ).where(among(session, OrganisationRow.id, wanted))
            ).mappings()
        }
        inserts = [
            v | {"created_at": now, "updated_at": now}
            for k, v in wanted.items()
            if k not in existing
        ]
        updates = [
            v | {"updated_at": now}
            for k, v in wanted.items()
            if k in existing and _differs(v, existing[k])
        ]
        if inserts:
            insert_rows(session, ORGANISATIONS, inserts)
        if updates:
            session.execute(update(OrganisationRow), updates)
        created += len(inserts)
        updated += len(updates)
        done += len(chunk)
        if progress is not None:
            progress(done)
    return UpsertResult(created, updated, done - created - updated)


def upsert_devices(
    session: Session,
    items: Sequence[Device | Router],
    source: str,
    now: datetime,
    progress: Progress | None,
) -> UpsertResult:
    """Upsert devices by serial, and the router row of each `Router` item."""
    result = UpsertResult()
    done = 0
    for chunk in batched(items, CHUNK):
        result = _add(result, _upsert_chunk(session, chunk, source, now))
        done += len(chunk)
        if progress is not None:
            progress(done)
    return result


def _upsert_chunk(
    session: Session, chunk: Sequence[Device | Router], source: str, now: datetime
) -> UpsertResult:
    devices = {_device_of(item).serial: device_values(_device_of(item)) for item in chunk}
    existing = {
        row["serial"]: row
        for row in session.execute(
            select(*DeviceRow.__table__.c).where(among(session, DeviceRow.serial, devices))
        ).mappings()
    }
    ids = {serial: row["id"] for serial, row in existing.items()}
    changed: set[str] = set()
    inserts = [
        v | {"created_at": now, "updated_at": now} for k, v in devices.items() if k not in existing
    ]
    updates = []
    for serial, values in devices.items():
        if serial in existing and _differs(values, existing[serial]):
            updates.append(values | {"id": ids[serial], "updated_at": now})
            changed.add(serial)
    if inserts:
        returned = insert_rows(session, DEVICES, inserts, DEVICES.c.serial, DEVICES.c.id)
        ids.update({row[0]: row[1] for row in returned})
    if updates:
        session.execute(update(DeviceRow), updates)
    changed |= _upsert_routers(session, chunk, ids, source, now)
    created = len(inserts)
    updated = len(changed - {v["serial"] for v in inserts})
    return UpsertResult(created, updated, len(devices) - created - updated)


def _upsert_routers(
    session: Session,
    chunk: Sequence[Device | Router],
    ids: dict[str, int],
    source: str,
    now: datetime,
) -> set[str]:
    """Bring the router rows of the chunk's devices in line; return the serials changed."""
    routers = {item.device.serial: item for item in chunk if isinstance(item, Router)}
    device_ids = [ids[_device_of(item).serial] for item in chunk]
    router_ids = [router.id for router in routers.values()]
    rows = (
        session.execute(
            select(*RouterRow.__table__.c).where(
                among(session, RouterRow.device_id, device_ids)
                | among(session, RouterRow.id, router_ids)
            )
        )
        .mappings()
        .all()
    )
    by_device = {row["device_id"]: row for row in rows}
    by_id = {row["id"]: row for row in rows}
    serial_of = {id_: serial for serial, id_ in ids.items()}
    changed: set[str] = set()
    inserts: list[Values] = []
    updates: list[Values] = []
    for serial, router in routers.items():
        device_id = ids[serial]
        values = router_values(router, source) | {"device_id": device_id}
        clash = by_id.get(router.id)
        if clash is not None and clash["device_id"] != device_id:
            other = session.scalar(
                select(DeviceRow.serial).where(DeviceRow.id == clash["device_id"])
            )
            raise StoreError(f"router id {router.id!r} already belongs to device {other}")
        old = by_device.get(device_id)
        if old is None:
            inserts.append(values | {"created_at": now, "updated_at": now})
        elif old["id"] != router.id:
            # Renaming a router changes its primary key, which bulk UPDATE cannot do; rare.
            session.execute(
                update(RouterRow)
                .where(RouterRow.device_id == device_id)
                .values(values | {"updated_at": now})
            )
        elif _differs(values, old):
            updates.append(values | {"updated_at": now})
        else:
            continue
        changed.add(serial)
    if inserts:
        insert_rows(session, ROUTERS, inserts)
    if updates:
        session.execute(update(RouterRow), updates)
    # A device given as a plain Device is no (longer a) router: drop a router row it had.
    in_chunk = set(device_ids)
    stale = [
        row["device_id"]
        for row in rows
        if row["device_id"] in in_chunk and serial_of[row["device_id"]] not in routers
    ]
    if stale:
        session.execute(delete(RouterRow).where(among(session, RouterRow.device_id, stale)))
        changed.update(serial_of[device_id] for device_id in stale)
    return changed


def batched(items: Iterable[T], size: int) -> Iterator[tuple[T, ...]]:
    """Successive tuples of `size` items (itertools.batched arrives only in Python 3.12)."""
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


def among(
    session: Session, column: InstrumentedAttribute[T], values: Iterable[T]
) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `= ANY(array)`, one parameter instead of thousands."""
    items = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(
            cast(
                bindparam(None, items, type_=ARRAY(column.expression.type)),
                ARRAY(column.expression.type),
            )
        )
    return column.in_(items)


def insert_rows(
    session: Session, table: Table, rows: list[Values], *returning: ColumnElement[Any]
) -> list[tuple[Any, ...]]:
    """Insert `rows` (all with the same keys); return the `returning` columns of each."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # One JSON parameter expanded by the server: psycopg's per-value adaptation of 10^5
        # parameters (or of arrays) costs more than the insert itself; json.dumps is C.
        keys = list(rows[0])
        spec = ", ".join(f"{key} {table.c[key].type.compile(dialect=dialect)}" for key in keys)
        source = text(
            f"SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS given({spec})"  # noqa: S608 - our own column names
        ).columns(*(table.c[key] for key in keys))
        statement = insert(table).from_select(keys, source)
        payload = {"rows": json.dumps(rows, default=_to_json)}
        if returning:
            return [tuple(row) for row in session.execute(statement.returning(*returning), payload)]
        session.execute(statement, payload)
        return []
    if returning:
        return [tuple(row) for row in session.execute(insert(table).returning(*returning), rows)]
    session.execute(insert(table), rows)
    return []


def _to_json(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _device_of(item: Device | Router) -> Device:
    return item.device if isinstance(item, Router) else item


def _differs(wanted: Values, row: Any) -> bool:
    return any(row[key] != value for key, value in wanted.items())


def _add(a: UpsertResult, b: UpsertResult) -> UpsertResult:
    return UpsertResult(a.created + b.created, a.updated + b.updated, a.unchanged + b.unchanged)
