"""Support requests: one row per alert episode that asked the portal for something.

Revision ID: 0004_support_requests
Revises: 0003_alerts
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_support_requests"
down_revision: str | None = "0003_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "'connectivity_support', 'reactivate_sim', 'deactivate_sim', 'data_cap_reached', "
    "'replace_router', 'reconfigure_router'"
)
STATES = "'queued', 'open', 'resolved', 'recorded', 'failed'"


def upgrade() -> None:
    """Create support_requests."""
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "support_requests",
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=True),
        sa.Column("on_behalf_of", sa.String(length=64), nullable=True),
        sa.Column("router_id", sa.String(length=64), nullable=True),
        sa.Column("imei", sa.String(length=32), nullable=True),
        sa.Column("iccid", sa.String(length=32), nullable=True),
        sa.Column("order_number", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.String(length=160), nullable=False),
        sa.Column("raised_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("portal_number", sa.String(length=40), nullable=True),
        sa.Column("portal_sys_id", sa.String(length=64), nullable=True),
        sa.Column("opened_at", stamp, nullable=True),
        sa.Column("responded_at", stamp, nullable=True),
        sa.Column("resolved_at", stamp, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_support_requests_kind")),
        sa.CheckConstraint(f"state IN ({STATES})", name=op.f("ck_support_requests_state")),
        sa.PrimaryKeyConstraint("correlation_id", name=op.f("pk_support_requests")),
    )
    for column in ("state", "organisation_id", "on_behalf_of", "router_id"):
        op.create_index(op.f(f"ix_support_requests_{column}"), "support_requests", [column])


def downgrade() -> None:
    """Drop support_requests (the requests' history is lost; the portal keeps its incidents)."""
    for column in ("state", "organisation_id", "on_behalf_of", "router_id"):
        op.drop_index(op.f(f"ix_support_requests_{column}"), table_name="support_requests")
    op.drop_table("support_requests")
