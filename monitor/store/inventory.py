"""The inventory repository: organisations, devices and routers in, domain values out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine, Row, Select, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ConfigError, NotFound, Problem
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
from monitor.store import bulk
from monitor.store.bulk import CHUNK, Progress, UpsertResult
from monitor.store.db import connected, reading, writing
from monitor.store.tables import DeviceRow, OrganisationRow, RouterRow

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What `Inventory.sync_config` did: upsert counts, and config routers no longer listed."""

    organisations: UpsertResult
    routers: UpsertResult
    unmonitored: int

    def __str__(self) -> str:
        return (
            f"organisations {self.organisations}; routers {self.routers}; "
            f"{self.unmonitored} routers no longer in the config, no longer polled"
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Inventory:
    """Reads and writes the inventory; every write method is one transaction."""

    def __init__(self, engine: Engine, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # --- writes ---------------------------------------------------------------------------

    def sync_config(
        self, organisations: Sequence[Organisation], routers: Sequence[Router]
    ) -> SyncResult:
        """Store what the configuration lists (source 'config'); unmonitor config routers gone."""
        with self._transaction() as session:
            self._check_config_references(session, organisations, routers)
            now = self._clock()
            orgs = bulk.upsert_organisations(session, organisations, now, None)
            done = bulk.upsert_devices(session, routers, "config", now, None)
            listed = {router.id for router in routers}
            gone = [
                router_id
                for router_id in session.scalars(
                    select(RouterRow.id).where(RouterRow.source == "config", RouterRow.monitored)
                )
                if router_id not in listed
            ]
            for chunk in bulk.batched(gone, CHUNK):
                session.execute(
                    update(RouterRow)
                    .where(bulk.among(session, RouterRow.id, chunk))
                    .values(monitored=False, updated_at=now)
                )
        return SyncResult(orgs, done, len(gone))

    def upsert_organisations(
        self, orgs: Sequence[Organisation], progress: Progress | None = None
    ) -> UpsertResult:
        """Create or update organisations by id; rows already as given are not touched."""
        with self._transaction() as session:
            return bulk.upsert_organisations(session, orgs, self._clock(), progress)

    def upsert_devices(
        self, items: Sequence[Device | Router], progress: Progress | None = None
    ) -> UpsertResult:
        """Create or update devices by serial, and each Router's router row (source 'import')."""
        with self._transaction() as session:
            return bulk.upsert_devices(session, items, "import", self._clock(), progress)

    def set_device_status(self, serial: str, status: DeviceStatus) -> Device:
        """Set one device's status (e.g. reported lost or stolen); NotFound if there is none."""
        with self._transaction() as session:
            row = session.scalars(select(DeviceRow).where(DeviceRow.serial == serial)).first()
            if row is None:
                raise NotFound(f"no device with serial {serial!r}")
            if row.status != status.value:
                row.status = status.value
                row.updated_at = self._clock()
            return _device(row)

    # --- reads ----------------------------------------------------------------------------

    def organisation_kinds(self, ids: Iterable[str]) -> dict[str, OrganisationKind]:
        """The kind of each of `ids` that is in the inventory (absent ids are left out)."""
        with self._reading() as session:
            return _organisation_kinds(session, ids)

    def router_serials(self, router_ids: Iterable[str]) -> dict[str, str]:
        """The device serial of each of `router_ids` that is in the inventory."""
        found: dict[str, str] = {}
        with self._reading() as session:
            for chunk in bulk.batched(set(router_ids), CHUNK):
                query = (
                    select(RouterRow.id, DeviceRow.serial)
                    .join(DeviceRow, DeviceRow.id == RouterRow.device_id)
                    .where(bulk.among(session, RouterRow.id, chunk))
                )
                found.update({router_id: serial for router_id, serial in session.execute(query)})
        return found

    def get_organisation(self, id: str) -> Organisation:
        """The organisation `id`; NotFound if there is none."""
        with self._reading() as session:
            row = session.get(OrganisationRow, id)
            if row is None:
                raise NotFound(f"no organisation {id!r}")
            return _organisation(row)

    def list_organisations(self) -> list[Organisation]:
        """Every organisation, by id."""
        with self._reading() as session:
            rows = session.scalars(select(OrganisationRow).order_by(OrganisationRow.id))
            return [_organisation(row) for row in rows]

    def get_device(self, serial: str) -> Device:
        """The device with serial number `serial`; NotFound if there is none."""
        with self._reading() as session:
            row = session.scalars(select(DeviceRow).where(DeviceRow.serial == serial)).first()
            if row is None:
                raise NotFound(f"no device with serial {serial!r}")
            return _device(row)

    def get_router(self, id_or_imei: str) -> Router:
        """The router with this router id or, failing that, this IMEI; NotFound if neither."""
        given = {"ref": id_or_imei}
        with connected(self._engine, "inventory") as connection:
            row = connection.execute(_ROUTER_BY_ID, given).first()
            if row is None:
                row = connection.execute(_ROUTER_BY_IMEI, given).first()
            if row is None:
                raise NotFound(f"no router with id or IMEI {id_or_imei!r}")
            return _router(row)

    def list_routers(self, monitored_only: bool = True) -> list[Router]:
        """Every router (only the monitored ones unless told otherwise), by router id."""
        query = _routers().order_by(RouterRow.id)
        if monitored_only:
            query = query.where(RouterRow.monitored)
        with self._reading() as session:
            return [_router(row) for row in session.execute(query)]

    def count_devices(self) -> int:
        """How many devices of every kind the inventory holds."""
        with self._reading() as session:
            return session.scalar(select(func.count()).select_from(DeviceRow)) or 0

    # --- plumbing -------------------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[Session]:
        return writing(self._sessions, "inventory")

    def _reading(self) -> AbstractContextManager[Session]:
        return reading(self._sessions, "inventory")

    def _check_config_references(
        self, session: Session, orgs: Sequence[Organisation], routers: Sequence[Router]
    ) -> None:
        listed = {org.id for org in orgs}
        wanted: list[tuple[str, str]] = [
            (f"organisation {org.id}, parent", org.parent_id) for org in orgs if org.parent_id
        ]
        wanted += [(f"router {r.id}, organisation", r.device.organisation_id) for r in routers]
        unknown = {ref for _, ref in wanted if ref not in listed}
        known = _organisation_kinds(session, unknown)
        problems = [
            Problem(where, f"organisation {ref!r} is neither in the configuration nor stored")
            for where, ref in wanted
            if ref not in listed and ref not in known
        ]
        if problems:
            raise ConfigError("configuration", problems)


def _organisation_kinds(session: Session, ids: Iterable[str]) -> dict[str, OrganisationKind]:
    found: dict[str, OrganisationKind] = {}
    for chunk in bulk.batched(set(ids), CHUNK):
        query = select(OrganisationRow.id, OrganisationRow.kind).where(
            bulk.among(session, OrganisationRow.id, chunk)
        )
        found.update({id_: OrganisationKind(kind) for id_, kind in session.execute(query)})
    return found


def _organisation(row: OrganisationRow) -> Organisation:
    return Organisation(row.id, row.name, OrganisationKind(row.kind), row.parent_id)


def _device(row: DeviceRow | Row[Any]) -> Device:
    return Device(
        serial=row.serial,
        kind=DeviceKind(row.kind),
        organisation_id=row.organisation_id,
        order_number=row.order_number,
        imei=row.imei,
        allocation=Allocation(row.allocation) if row.allocation else None,
        order_term=row.order_term,
        status=DeviceStatus(row.status),
    )


def _routers() -> Select[Any]:
    # Plain columns rather than two ORM objects per router: listing 100k routers stays cheap.
    return select(
        RouterRow.id.label("router_id"),
        RouterRow.iccid,
        RouterRow.protocol,
        RouterRow.host,
        RouterRow.port,
        RouterRow.profile,
        RouterRow.monitored,
        *(column for column in DeviceRow.__table__.c if column.key != "id"),
    ).join(DeviceRow, DeviceRow.id == RouterRow.device_id)


# Built once: the status API looks a router up on every request (see `connected`).
_ROUTER_BY_ID: Final = _routers().where(RouterRow.id == bindparam("ref"))
# An IMEI may come back on a replacement's record: prefer the monitored one, then the newest.
_ROUTER_BY_IMEI: Final = (
    _routers()
    .where(DeviceRow.imei == bindparam("ref"))
    .order_by(RouterRow.monitored.desc(), RouterRow.updated_at.desc())
    .limit(1)
)


def _router(row: Row[Any]) -> Router:
    endpoint = None
    if row.protocol is not None:
        endpoint = Endpoint(Protocol(row.protocol), row.host, row.port, row.profile)
    return Router(row.router_id, _device(row), row.iccid, endpoint, row.monitored)
