"""router_live: each router's latest poll status, month and rate, for the status API process.

Revision ID: 0007_router_live
Revises: 0006_transition_once
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_router_live"
down_revision: str | None = "0006_transition_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create router_live (filled by the poller's next batches)."""
    op.create_table(
        "router_live",
        sa.Column("router_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["router_id"],
            ["routers.id"],
            name="fk_router_live_router_id_routers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("router_id", name="pk_router_live"),
    )


def downgrade() -> None:
    """Drop router_live."""
    op.drop_table("router_live")
