"""Alerts and the outbox of things to send about them.

Revision ID: 0003_alerts
Revises: 0002_usage_health
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_alerts"
down_revision: str | None = "0002_usage_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALERT_STATES = "'inactive', 'pending', 'firing', 'resolved'"
CHANNELS = "'notify', 'support'"
EVENTS = "'firing', 'resolved', 'update'"
OUTBOX_STATES = "'pending', 'sending', 'sent', 'failed'"


def upgrade() -> None:
    """Create alerts and outbox."""
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("router_id", sa.String(length=64), nullable=True),
        sa.Column("organisation_id", sa.String(length=64), nullable=True),
        sa.Column("active_since", stamp, nullable=True),
        sa.Column("starts_at", stamp, nullable=True),
        sa.Column("ends_at", stamp, nullable=True),
        sa.Column("episode_id", sa.String(length=64), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("request", sa.String(length=32), nullable=True),
        sa.Column("held_back", sa.Boolean(), nullable=False),
        sa.CheckConstraint(f"state IN ({ALERT_STATES})", name=op.f("ck_alerts_state")),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_router_id"), "alerts", ["router_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("episode_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("next_attempt_at", stamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(f"channel IN ({CHANNELS})", name=op.f("ck_outbox_channel")),
        sa.CheckConstraint(f"event IN ({EVENTS})", name=op.f("ck_outbox_event")),
        sa.CheckConstraint(f"state IN ({OUTBOX_STATES})", name=op.f("ck_outbox_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("episode_id", "channel", "event", name=op.f("uq_outbox_episode_id")),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    """Drop alerts and outbox (their history is lost)."""
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_alerts_router_id"), table_name="alerts")
    op.drop_table("alerts")
