"""Usage and health: last counter readings, month totals per router and SIM, health states.

Revision ID: 0002_usage_health
Revises: 0001_inventory
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_usage_health"
down_revision: str | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, as in 0001: a migration keeps meaning what it meant when written.
COUNTER_TYPES = "'counter32', 'counter64', 'integer32', 'device'"
UPTIME_CLOCKS = "'sysUpTime', 'snmpEngineTime', 'hrSystemUptime', 'device'"
HEALTH_STATES = (
    "'unknown', 'online', 'wan_down', 'sim_absent', 'capped', 'unreachable', 'unreadable'"
)


def upgrade() -> None:
    """Create usage_state and usage_months."""
    counter = sa.String(length=20)  # decimal text: Counter64 values exceed a signed BIGINT
    op.create_table(
        "usage_state",
        sa.Column("router_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("iccid", sa.String(length=22), nullable=True),
        sa.Column("received_value", counter, nullable=True),
        sa.Column("received_type", sa.String(length=16), nullable=True),
        sa.Column("sent_value", counter, nullable=True),
        sa.Column("sent_type", sa.String(length=16), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=True),
        sa.Column("uptime_clock", sa.String(length=16), nullable=True),
        sa.Column("month_received", counter, nullable=True),
        sa.Column("month_sent", counter, nullable=True),
        sa.Column("month_cleared", sa.String(length=64), nullable=True),
        sa.Column("recent_rate", sa.Float(), nullable=True),
        sa.CheckConstraint(
            f"received_type IN ({COUNTER_TYPES})", name=op.f("ck_usage_state_received_type")
        ),
        sa.CheckConstraint(
            f"sent_type IN ({COUNTER_TYPES})", name=op.f("ck_usage_state_sent_type")
        ),
        sa.CheckConstraint(
            f"uptime_clock IN ({UPTIME_CLOCKS})", name=op.f("ck_usage_state_uptime_clock")
        ),
        sa.ForeignKeyConstraint(
            ["router_id"],
            ["routers.id"],
            name=op.f("fk_usage_state_router_id_routers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("router_id", name=op.f("pk_usage_state")),
    )
    op.create_table(
        "usage_months",
        sa.Column("router_id", sa.String(length=64), nullable=False),
        sa.Column("iccid", sa.String(length=22), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "received >= 0 AND sent >= 0", name=op.f("ck_usage_months_not_negative")
        ),
        sa.PrimaryKeyConstraint("router_id", "iccid", "month", name=op.f("pk_usage_months")),
    )
    op.create_index("ix_usage_months_iccid_month", "usage_months", ["iccid", "month"])
    op.create_table(
        "health_state",
        sa.Column("router_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pending", sa.String(length=16), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"state IN ({HEALTH_STATES})", name=op.f("ck_health_state_state")),
        sa.CheckConstraint(f"pending IN ({HEALTH_STATES})", name=op.f("ck_health_state_pending")),
        sa.ForeignKeyConstraint(
            ["router_id"],
            ["routers.id"],
            name=op.f("fk_health_state_router_id_routers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("router_id", name=op.f("pk_health_state")),
    )
    op.create_table(
        "health_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("router_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_transitions")),
    )
    op.create_index("ix_health_transitions_router_id_at", "health_transitions", ["router_id", "at"])


def downgrade() -> None:
    """Drop the usage and health tables (their history is lost)."""
    op.drop_index("ix_health_transitions_router_id_at", table_name="health_transitions")
    op.drop_table("health_transitions")
    op.drop_table("health_state")
    op.drop_index("ix_usage_months_iccid_month", table_name="usage_months")
    op.drop_table("usage_months")
    op.drop_table("usage_state")
