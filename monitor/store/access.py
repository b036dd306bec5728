"""Access: status API tokens, encrypted device passwords, the password audit, scoped reads.

- A token's secret is shown once, when created; only its SHA-256 is stored (the secret is 256
  random bits, so a plain hash is as good as a slow one and lets a request find its token).
- Passwords are AES-256-GCM encrypted with a key that never enters the database (the CLI and
  `monitor.app` read it from the environment); each ciphertext is bound to its device serial and
  field, so ciphertexts cannot be swapped between devices.
- Every request for a device's passwords, shown or refused, is one `access_audit` row; so is
  every report of a router lost or stolen (written in the transaction that marks the device).
- The API's listings are read here page by page, filtered by the organisations a caller sees.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ConfigError, NotFound, Problem, StoreError
from monitor.model import (
    OPEN_STATES,
    Device,
    DeviceKind,
    DeviceStatus,
    Organisation,
    OrganisationKind,
    Router,
)
from monitor.store.bulk import CHUNK, UpsertResult, batched
from monitor.store.db import as_utc, connected, reading, upsert, writing
from monitor.store.inventory import _device, _routers
from monitor.store.tables import (
    AccessAuditRow,
    ApiTokenRow,
    DevicePasswordRow,
    DeviceRow,
    HealthStateRow,
    OrganisationRow,
    RouterRow,
    SupportRequestRow,
)

WINDOWS = frozenset({DeviceKind.WINDOWS_LAPTOP.value, DeviceKind.WINDOWS_TABLET.value})
Clock = Callable[[], datetime]
NONCE_BYTES, TAG_BYTES = 12, 16  # AES-GCM's


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored (never its secret)."""

    id: str
    name: str
    role: str
    organisation_id: str | None
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """What a valid token stands for: the token, its organisation and the schools under it."""

    token: TokenRecord
    organisation: Organisation | None
    children: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request (a device's passwords, or a report of a router lost or stolen) and
    what came of it."""

    at: datetime
    token_id: str
    who: str
    role: str
    organisation_id: str | None
    device_serial: str
    outcome: str  # shown, reported, refused, not_found, unavailable
    reason: str


@dataclass(frozen=True, slots=True)
class DevicePasswords:
    """A device's BIOS and local admin passwords, in clear (kept out of repr)."""

    serial: str
    bios: str = field(repr=False)
    admin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RouterListing:
    """A router as a listing shows it: its device's facts and its stored health state
    (`unknown` if never judged). Plain values: a page of them is built per API request."""

    id: str
    imei: str | None
    serial: str
    organisation_id: str
    order_number: str
    device_status: str
    monitored: bool
    state: str
    since: datetime | None

    @classmethod
    def of(cls, router: Router, state: str, since: datetime | None) -> RouterListing:
        """A router from the inventory, as listed, in `state` since `since`."""
        device = router.device
        return cls(
            router.id, device.imei, device.serial, device.organisation_id, device.order_number,
            device.status.value, router.monitored, state, since,
        )  # fmt: skip


class PasswordCipher:
    """AES-256-GCM over one key; `key_id` (a hash prefix) names the key, never reveals it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a password key is 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"router-monitor password key" + key).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"PasswordCipher(key_id={self.key_id!r})"

    @classmethod
    def from_text(cls, text: str, where: str = "password key") -> PasswordCipher:
        """A cipher over a key given as URL-safe base64 text (config.password_key reads it);
        ConfigError naming `where` (never showing the key) if it is not a usable key."""
        try:
            return cls(base64.urlsafe_b64decode(text.strip().encode("ascii")))
        except (ValueError, binascii.Error, UnicodeEncodeError):
            reason = "must be 32 random bytes in URL-safe base64 (see docs/api.md)"
            raise ConfigError("password key", [Problem(where, reason)]) from None

    @staticmethod
    def new_key() -> str:
        """A fresh key, as $MONITOR_PASSWORD_KEY wants it."""
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")

    def encrypt(self, serial: str, what: str, plain: str) -> str:
        """`plain` encrypted for device `serial`'s field `what`, as base64 text."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8"), f"{serial}/{what}".encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, serial: str, what: str, stored: str) -> str:
        """The clear text of `stored`; StoreError if this key did not encrypt it for this field,
        or the stored text is damaged (not base64, too short, not UTF-8)."""
        try:
            raw = base64.b64decode(stored.encode("ascii"), validate=True)
            if len(raw) < NONCE_BYTES + TAG_BYTES:
                raise ValueError("too short")
            sealed = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{serial}/{what}".encode()
            )
            return sealed.decode("utf-8")
        except (InvalidTag, ValueError):  # binascii.Error and UnicodeError are ValueErrors
            raise StoreError(f"device {serial}: stored {what} password does not decrypt") from None


def hash_secret(secret: str) -> str:
    """The stored form of a token's secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccessStore:
    """Tokens, passwords, the audit, and the API's scoped reads; each write one transaction."""

    def __init__(self, engine: Engine, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # --- tokens ---------------------------------------------------------------------------

    def create_token(
        self, name: str, role: str, organisation_id: str | None
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret (shown once: only its hash is kept)."""
        secret = "rmt_" + secrets.token_urlsafe(32)
        record = TokenRecord(secrets.token_hex(8), name, role, organisation_id, self._clock())
        with writing(self._sessions, "creating a token") as session:
            if (
                organisation_id is not None
                and session.get(OrganisationRow, organisation_id) is None
            ):
                raise NotFound(f"no organisation {organisation_id!r}")
            session.add(
                ApiTokenRow(
                    id=record.id,
                    secret_hash=hash_secret(secret),
                    name=name,
                    role=role,
                    organisation_id=organisation_id,
                    created_at=record.created_at,
                )
            )
        return record, secret

    def authenticate(self, secret: str) -> Caller | None:
        """The caller a secret stands for; None if it is unknown or revoked."""
        with reading(self._sessions, "authenticating") as session:
            row = session.scalars(
                select(ApiTokenRow).where(ApiTokenRow.secret_hash == hash_secret(secret))
            ).first()
            if row is None or row.revoked_at is not None:
                return None
            org = children = None
            if row.organisation_id is not None:
                found = session.get(OrganisationRow, row.organisation_id)
                if found is None:
                    return None
                org = Organisation(
                    found.id, found.name, OrganisationKind(found.kind), found.parent_id
                )
                children = session.scalars(
                    select(OrganisationRow.id).where(OrganisationRow.parent_id == found.id)
                ).all()
            return Caller(_token(row), org, frozenset(children or ()))

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        with reading(self._sessions, "tokens") as session:
            query = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id)
            return [_token(row) for row in session.scalars(query)]

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False if there is no such token still valid."""
        with writing(self._sessions, "revoking a token") as session:
            done = session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    # --- passwords and their audit ----------------------------------------------------------

    def store_passwords(
        self, items: Sequence[tuple[str, str, str]], cipher: PasswordCipher
    ) -> UpsertResult:
        """Store (serial, bios, admin) triples encrypted, all or none; NotFound (naming them)
        if any serial is not a Windows device of the inventory."""
        now = self._clock()
        with writing(self._sessions, "storing device passwords") as session:
            serials = [serial for serial, _, _ in items]
            if bad := self._not_windows(session, serials):
                shown = ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
                raise NotFound(f"not Windows devices in the inventory: {shown}")
            existing: set[str] = set()
            for chunk in batched(set(serials), CHUNK):
                query = select(DevicePasswordRow.serial).where(DevicePasswordRow.serial.in_(chunk))
                existing.update(session.scalars(query))
            for serial, bios, admin in items:
                values = {
                    "serial": serial,
                    "key_id": cipher.key_id,
                    "bios": cipher.encrypt(serial, "bios", bios),
                    "admin": cipher.encrypt(serial, "admin", admin),
                    "updated_at": now,
                }
                upsert(session, DevicePasswordRow, values, "serial")
        updated = len(existing & set(serials))
        return UpsertResult(created=len(set(serials)) - updated, updated=updated)

    def not_windows(self, serials: Collection[str]) -> list[str]:
        """Those of `serials` that are not Windows devices of the inventory (no passwords)."""
        with reading(self._sessions, "devices") as session:
            return self._not_windows(session, serials)

    @staticmethod
    def _not_windows(session: Session, serials: Collection[str]) -> list[str]:
        kinds: dict[str, str] = {}
        for chunk in batched(set(serials), CHUNK):
            query = select(DeviceRow.serial, DeviceRow.kind).where(DeviceRow.serial.in_(chunk))
            kinds.update({serial: kind for serial, kind in session.execute(query)})
        return [serial for serial in serials if kinds.get(serial) not in WINDOWS]

    def passwords(self, serial: str, cipher: PasswordCipher) -> DevicePasswords | None:
        """A device's passwords in clear; None if none are stored."""
        with reading(self._sessions, "device passwords") as session:
            row = session.get(DevicePasswordRow, serial)
            if row is None:
                return None
            if row.key_id != cipher.key_id:
                raise StoreError(f"device {serial}: passwords were stored under another key")
            return DevicePasswords(
                serial,
                cipher.decrypt(serial, "bios", row.bios),
                cipher.decrypt(serial, "admin", row.admin),
            )

    def audit(self, entry: AuditEntry) -> None:
        """Record one audited request's outcome."""
        with writing(self._sessions, "auditing a request") as session:
            session.add(_audit_row(entry))

    def report_status(self, serial: str, status: DeviceStatus, entry: AuditEntry) -> Device:
        """Set a device's status (reported lost or stolen) and write `entry` (its reason
        completed with the status before) in one transaction: no change goes unaudited.
        NotFound, with nothing written, if there is no such device."""
        with writing(self._sessions, "reporting a device lost or stolen") as session:
            row = session.scalars(select(DeviceRow).where(DeviceRow.serial == serial)).first()
            if row is None:
                raise NotFound(f"no device with serial {serial!r}")
            before = row.status
            if before != status.value:
                row.status = status.value
                row.updated_at = self._clock()
            session.add(_audit_row(replace(entry, reason=f"{entry.reason} (was {before})")))
            return _device(row)

    def audit_log(self, serial: str | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first (of one device, if given)."""
        query = select(AccessAuditRow).order_by(AccessAuditRow.id)
        if serial is not None:
            query = query.where(AccessAuditRow.device_serial == serial)
        with reading(self._sessions, "the access audit") as session:
            return [_audit(row) for row in session.scalars(query)]

    # --- the API's scoped reads -------------------------------------------------------------

    def children(self, organisation_id: str) -> frozenset[str]:
        """The ids of the schools and colleges under an LA or trust."""
        query = select(OrganisationRow.id).where(OrganisationRow.parent_id == organisation_id)
        with reading(self._sessions, "organisations") as session:
            return frozenset(session.scalars(query))

    def routers_page(
        self,
        organisations: Collection[str] | None,
        states: Collection[str] | None,
        limit: int,
        offset: int,
    ) -> list[RouterListing]:
        """One page of the routers matching (see `count_routers`), by router id, with their
        stored health."""
        given = _scope(organisations, states)
        query = _page(frozenset(given))
        with connected(self._engine, "routers") as connection:
            rows = connection.execute(query, {**given, "limit": limit, "offset": offset}).all()
        return [
            RouterListing(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], as_utc(r[8]) if r[8] else None
            )
            for r in rows
        ]

    def count_routers(
        self, organisations: Collection[str] | None, states: Collection[str] | None
    ) -> int:
        """How many routers of these organisations (None: all) are in these stored health states
        (None: any). A scan of the matching routers (3.7 ms of CPU at 10k), which is
        why the API keeps its totals for a few seconds (`monitor.api.routes.Totals`)."""
        given = _scope(organisations, states)
        with connected(self._engine, "counting routers") as connection:
            return connection.execute(_count(frozenset(given)), given).scalar() or 0

    def router_states(self, organisations: Collection[str]) -> dict[str, int]:
        """How many monitored routers of these organisations are in each stored health state."""
        state = func.coalesce(HealthStateRow.state, "unknown")
        query = (
            select(state, func.count())
            .select_from(RouterRow)
            .join(DeviceRow, DeviceRow.id == RouterRow.device_id)
            .outerjoin(HealthStateRow, HealthStateRow.router_id == RouterRow.id)
            .where(RouterRow.monitored, DeviceRow.organisation_id.in_(list(organisations)))
            .group_by(state)
        )
        with reading(self._sessions, "router states") as session:
            return {name: count for name, count in session.execute(query)}

    def device_statuses(self, organisations: Collection[str]) -> dict[str, int]:
        """How many devices of every kind these organisations hold, by status."""
        query = (
            select(DeviceRow.status, func.count())
            .where(DeviceRow.organisation_id.in_(list(organisations)))
            .group_by(DeviceRow.status)
        )
        with reading(self._sessions, "device statuses") as session:
            return {name: count for name, count in session.execute(query)}

    def open_requests(self, organisations: Collection[str]) -> dict[str, int]:
        """Open (queued or open) support requests at or raised by these organisations, by kind."""
        ids = list(organisations)
        query = (
            select(SupportRequestRow.kind, func.count())
            .where(
                or_(
                    SupportRequestRow.organisation_id.in_(ids),
                    SupportRequestRow.on_behalf_of.in_(ids),
                ),
                SupportRequestRow.state.in_([state.value for state in OPEN_STATES]),
            )
            .group_by(SupportRequestRow.kind)
        )
        with reading(self._sessions, "support requests") as session:
            return {kind: count for kind, count in session.execute(query)}


def _token(row: ApiTokenRow) -> TokenRecord:
    revoked = as_utc(row.revoked_at) if row.revoked_at is not None else None
    return TokenRecord(
        row.id, row.name, row.role, row.organisation_id, as_utc(row.created_at), revoked
    )


def _audit_row(entry: AuditEntry) -> AccessAuditRow:
    return AccessAuditRow(
        at=entry.at,
        token_id=entry.token_id,
        who=entry.who[:200],
        role=entry.role,
        organisation_id=entry.organisation_id,
        device_serial=entry.device_serial[:64],
        outcome=entry.outcome,
        reason=entry.reason[:300],
    )


def _audit(row: AccessAuditRow) -> AuditEntry:
    return AuditEntry(
        as_utc(row.at),
        row.token_id,
        row.who,
        row.role,
        row.organisation_id,
        row.device_serial,
        row.outcome,
        row.reason,
    )


def _health_state() -> Any:
    """A router's stored health state, `unknown` if it was never judged."""
    return func.coalesce(HealthStateRow.state, "unknown").label("health")


def _scope(organisations: Collection[str] | None, states: Collection[str] | None) -> dict[str, Any]:
    """A listing's scope as the bound parameters `_listing` names (absent: any)."""
    given: dict[str, Any] = {}
    if organisations is not None:
        given["organisations"] = list(organisations)
    if states is not None:
        given["states"] = list(states)
    return given


def _listing(filters: frozenset[str]) -> Select[Any]:
    """The routers of the `organisations` in the health `states` (each filter named in `filters`,
    a bound parameter), with their stored health state and since when."""
    state = _health_state()
    query: Select[Any] = _routers().add_columns(state, HealthStateRow.since.label("health_since"))
    query = query.outerjoin(HealthStateRow, HealthStateRow.router_id == RouterRow.id)
    if "organisations" in filters:
        query = query.where(
            DeviceRow.organisation_id.in_(bindparam("organisations", expanding=True))
        )
    if "states" in filters:
        query = query.where(state.in_(bindparam("states", expanding=True)))
    return query


# Built once per scope's shape (4): a page is read on every listing request (see
# `monitor.store.db.connected`).
@functools.cache
def _page(filters: frozenset[str]) -> Select[Any]:
    return (
        _listing(filters)
        .with_only_columns(
            RouterRow.id,
            DeviceRow.imei,
            DeviceRow.serial,
            DeviceRow.organisation_id,
            DeviceRow.order_number,
            DeviceRow.status,
            RouterRow.monitored,
            _health_state(),
            HealthStateRow.since,
        )
        .order_by(RouterRow.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


@functools.cache
def _count(filters: frozenset[str]) -> Select[Any]:
    return select(func.count()).select_from(_listing(filters).subquery())
