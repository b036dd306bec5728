"""Inventory: organisations, devices and routers.

Revision ID: 0001_inventory
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001_inventory"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from monitor.model: a migration must keep meaning what it
# meant when written, whatever the enums become later.
ORGANISATION_KINDS = "'local_authority', 'academy_trust', 'school', 'college'"
DEVICE_KINDS = "'windows_laptop', 'windows_tablet', 'chromebook', 'ipad', 'router'"
ALLOCATIONS = "'social_care', 'schools'"
STATUSES = "'in_use', 'in_stock', 'lost', 'stolen', 'faulty', 'replaced'"
PROTOCOLS = "'snmp', 'hilink'"
SOURCES = "'config', 'import'"


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    """Create the inventory tables."""
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(f"kind IN ({ORGANISATION_KINDS})", name=op.f("ck_organisations_kind")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organisations.id"],
            name=op.f("fk_organisations_parent_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_index(op.f("ix_organisations_parent_id"), "organisations", ["parent_id"])

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("imei", sa.String(length=15), nullable=True),
        sa.Column("allocation", sa.String(length=16), nullable=True),
        sa.Column("order_term", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(f"kind IN ({DEVICE_KINDS})", name=op.f("ck_devices_kind")),
        sa.CheckConstraint(f"allocation IN ({ALLOCATIONS})", name=op.f("ck_devices_allocation")),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_devices_status")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_devices_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("serial", name=op.f("uq_devices_serial")),
    )
    op.create_index(op.f("ix_devices_organisation_id"), "devices", ["organisation_id"])
    op.create_index(op.f("ix_devices_imei"), "devices", ["imei"])

    op.create_table(
        "routers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("iccid", sa.String(length=22), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("host", sa.String(length=253), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("profile", sa.String(length=64), nullable=True),
        sa.Column("monitored", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(f"protocol IN ({PROTOCOLS})", name=op.f("ck_routers_protocol")),
        sa.CheckConstraint(f"source IN ({SOURCES})", name=op.f("ck_routers_source")),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_routers_port")),
        sa.CheckConstraint(
            "(protocol IS NULL AND host IS NULL AND port IS NULL AND profile IS NULL)"
            " OR (protocol IS NOT NULL AND host IS NOT NULL AND port IS NOT NULL"
            " AND profile IS NOT NULL)",
            name=op.f("ck_routers_endpoint"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_routers_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routers")),
        sa.UniqueConstraint("device_id", name=op.f("uq_routers_device_id")),
    )


def downgrade() -> None:
    """Drop the inventory tables."""
    op.drop_table("routers")
    op.drop_index(op.f("ix_devices_imei"), table_name="devices")
    op.drop_index(op.f("ix_devices_organisation_id"), table_name="devices")
    op.drop_table("devices")
    op.drop_index(op.f("ix_organisations_parent_id"), table_name="organisations")
    op.drop_table("organisations")
