"""The inventory tables, as SQLAlchemy 2.0 declarative models.

These rows never leave `monitor.store`: repositories turn them into the values of
`monitor.model`. Enums are stored as plain strings guarded by CHECK constraints, which read the
same on SQLite and PostgreSQL and let a new enum member arrive through an ordinary migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.model import (
    Allocation,
    CounterType,
    DeviceKind,
    DeviceStatus,
    OrganisationKind,
    Protocol,
    SupportRequestKind,
    SupportRequestState,
    UptimeClock,
)

# Fixed constraint names, so that migrations can name (and later drop) what they create.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROUTER_SOURCES = ("config", "import")


def one_of(column: str, values: type[StrEnum] | tuple[str, ...]) -> str:
    """A CHECK expression allowing `column` only the given values (NULL passes, as in SQL)."""
    names = [member.value for member in values] if isinstance(values, type) else list(values)
    quoted = ", ".join(f"'{name}'" for name in names)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base of the inventory and state tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrganisationRow(Base):
    """An LA, academy trust, school or college."""

    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint(one_of("kind", OrganisationKind), name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("organisations.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceRow(Base):
    """One device of any kind, keyed for people by its serial number."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(one_of("kind", DeviceKind), name="kind"),
        CheckConstraint(one_of("allocation", Allocation), name="allocation"),
        CheckConstraint(one_of("status", DeviceStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("organisations.id"), index=True
    )
    order_number: Mapped[str] = mapped_column(String(64))
    imei: Mapped[str | None] = mapped_column(String(15), index=True)
    allocation: Mapped[str | None] = mapped_column(String(16))
    order_term: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RouterRow(Base):
    """What polling needs about a device of kind router; its id is the router id."""

    __tablename__ = "routers"
    __table_args__ = (
        CheckConstraint(one_of("protocol", Protocol), name="protocol"),
        CheckConstraint(one_of("source", ROUTER_SOURCES), name="source"),
        CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
        # An endpoint is all there or not there at all: half an endpoint cannot be polled.
        CheckConstraint(
            "(protocol IS NULL AND host IS NULL AND port IS NULL AND profile IS NULL)"
            " OR (protocol IS NOT NULL AND host IS NOT NULL AND port IS NOT NULL"
            " AND profile IS NOT NULL)",
            name="endpoint",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    iccid: Mapped[str | None] = mapped_column(String(22))
    protocol: Mapped[str | None] = mapped_column(String(16))
    host: Mapped[str | None] = mapped_column(String(253))
    port: Mapped[int | None] = mapped_column(Integer)
    profile: Mapped[str | None] = mapped_column(String(64))
    monitored: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CounterValue(TypeDecorator[int]):
    """An unsigned 64-bit counter as decimal text: Counter64 values reach 2^64 - 1, beyond both
    a signed BIGINT and SQLite's integers (which would turn them into inexact REALs)."""

    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class UsageStateRow(Base):
    """The usage core's memory of one router: its last raw readings (see model.UsageState)."""

    __tablename__ = "usage_state"
    __table_args__ = (
        CheckConstraint(one_of("received_type", CounterType), name="received_type"),
        CheckConstraint(one_of("sent_type", CounterType), name="sent_type"),
        CheckConstraint(one_of("uptime_clock", UptimeClock), name="uptime_clock"),
    )

    router_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    iccid: Mapped[str | None] = mapped_column(String(22))
    received_value: Mapped[int | None] = mapped_column(CounterValue)
    received_type: Mapped[str | None] = mapped_column(String(16))
    sent_value: Mapped[int | None] = mapped_column(CounterValue)
    sent_type: Mapped[str | None] = mapped_column(String(16))
    uptime_seconds: Mapped[float | None] = mapped_column(Float)
    uptime_clock: Mapped[str | None] = mapped_column(String(16))
    month_received: Mapped[int | None] = mapped_column(CounterValue)
    month_sent: Mapped[int | None] = mapped_column(CounterValue)
    month_cleared: Mapped[str | None] = mapped_column(String(64))
    recent_rate: Mapped[float | None] = mapped_column(Float)


class UsageMonthRow(Base):
    """Bytes counted for one SIM in one router in one calendar month (history is kept)."""

    __tablename__ = "usage_months"
    __table_args__ = (
        Index("ix_usage_months_iccid_month", "iccid", "month"),
        CheckConstraint("received >= 0 AND sent >= 0", name="not_negative"),
    )

    # No foreign key: a month's history outlives the router's inventory row.
    router_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    iccid: Mapped[str] = mapped_column(String(22), primary_key=True)  # '' when unknown
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM, local zone
    received: Mapped[int] = mapped_column(BigInteger)
    sent: Mapped[int] = mapped_column(BigInteger)
    partial: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


HEALTH_STATES = (
    "unknown", "online", "wan_down", "sim_absent", "capped", "unreachable", "unreadable",
)  # fmt: skip


class HealthStateRow(Base):
    """One router's current health and what flap damping remembers (see model.HealthState)."""

    __tablename__ = "health_state"
    __table_args__ = (
        CheckConstraint(one_of("state", HEALTH_STATES), name="state"),
        CheckConstraint(one_of("pending", HEALTH_STATES), name="pending"),
    )

    router_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pending: Mapped[str | None] = mapped_column(String(16))
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RouterLiveRow(Base):
    """What the poller last published of one router for readers in other processes (the status
    API): its poll status, the month its cap counts and the recent rate, as JSON (see
    `monitor.store.live`). Rewritten with every batch of poll results; never history."""

    __tablename__ = "router_live"

    router_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the last poll's time
    body: Mapped[str] = mapped_column(Text)


class HealthTransitionRow(Base):
    """A recorded change of a router's health, with its reason (history is kept)."""

    __tablename__ = "health_transitions"
    # Unique: a batch retried after a lost commit answer inserts its transitions again, and
    # they are skipped (ON CONFLICT DO NOTHING); also the index the history is read by.
    __table_args__ = (
        Index("uq_health_transitions_once", "router_id", "at", "to_state", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    router_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))


ALERT_STATES = ("inactive", "pending", "firing", "resolved")
OUTBOX_CHANNELS = ("notify", "support")
OUTBOX_EVENTS = ("firing", "resolved", "update")
OUTBOX_STATES = ("pending", "sending", "sent", "failed")


class AlertRow(Base):
    """One alert's lifecycle state (see model.Alert); labels and annotations as JSON text."""

    __tablename__ = "alerts"
    __table_args__ = (CheckConstraint(one_of("state", ALERT_STATES), name="state"),)

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    router_id: Mapped[str | None] = mapped_column(String(64), index=True)
    organisation_id: Mapped[str | None] = mapped_column(String(64))
    active_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    episode_id: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[str] = mapped_column(Text)
    annotations: Mapped[str] = mapped_column(Text)
    request: Mapped[str | None] = mapped_column(String(32))
    held_back: Mapped[bool] = mapped_column(Boolean)


class OutboxRow(Base):
    """Something to send about an alert episode, written with the transition (outbox pattern).

    The unique key makes a re-evaluation after a restart write nothing twice; dispatchers claim
    rows with a conditional UPDATE so that several of them never send one row twice.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("episode_id", "channel", "event"),
        CheckConstraint(one_of("channel", OUTBOX_CHANNELS), name="channel"),
        CheckConstraint(one_of("event", OUTBOX_EVENTS), name="event"),
        CheckConstraint(one_of("state", OUTBOX_STATES), name="state"),
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    episode_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))


class SupportRequestRow(Base):
    """One support request (see model.SupportRequest), keyed by its episode's correlation id.

    Written with the outbox row that will send it, so a request exists exactly when the alert
    transition that calls for it committed; the primary key stops a second one per episode.
    """

    __tablename__ = "support_requests"
    __table_args__ = (
        CheckConstraint(one_of("kind", SupportRequestKind), name="kind"),
        CheckConstraint(one_of("state", SupportRequestState), name="state"),
    )

    correlation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    on_behalf_of: Mapped[str | None] = mapped_column(String(64), index=True)
    router_id: Mapped[str | None] = mapped_column(String(64), index=True)
    imei: Mapped[str | None] = mapped_column(String(32))
    iccid: Mapped[str | None] = mapped_column(String(32))
    order_number: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(160))
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    portal_number: Mapped[str | None] = mapped_column(String(40))
    portal_sys_id: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))


# The API's roles (monitor.core.access.Role; the store may not import the core, a test keeps
# the two in step) and what an audited request (passwords, report-lost) came to.
TOKEN_ROLES = (
    "la_user", "trust_user", "school_technical_contact", "nominated_orderer", "programme",
)  # fmt: skip
AUDIT_OUTCOMES = ("shown", "reported", "refused", "not_found", "unavailable")


class ApiTokenRow(Base):
    """A status API bearer token: only the SHA-256 of its secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(one_of("role", TOKEN_ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("organisations.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccessAuditRow(Base):
    """One request for a device's passwords or to report a router lost or stolen, granted or
    refused (history is kept)."""

    __tablename__ = "access_audit"
    __table_args__ = (
        CheckConstraint(one_of("outcome", AUDIT_OUTCOMES), name="outcome"),
        Index("ix_access_audit_device_serial_at", "device_serial", "at"),
    )

    # No foreign keys: the audit outlives revoked tokens and retired devices.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    token_id: Mapped[str] = mapped_column(String(16))
    who: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[str | None] = mapped_column(String(64))
    device_serial: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300))


class DevicePasswordRow(Base):
    """A Windows device's BIOS and local admin passwords, each AES-GCM encrypted (base64 text).

    The key never enters the database; `key_id` names the key that encrypted them.
    """

    __tablename__ = "device_passwords"

    serial: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.serial", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[str] = mapped_column(String(16))
    bios: Mapped[str] = mapped_column(Text)
    admin: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
