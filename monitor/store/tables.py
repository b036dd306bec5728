"""The inventory tables, as SQLAlchemy 2.0 declarative models.

These rows never leave `monitor.store`: repositories turn them into the values of
`monitor.model`. Enums are stored as plain strings guarded by CHECK constraints, which read the
same on SQLite and PostgreSQL and let a new enum member arrive through an ordinary migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.model import Allocation, DeviceKind, DeviceStatus, OrganisationKind, Protocol

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
