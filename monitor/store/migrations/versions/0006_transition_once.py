"""A health transition is stored once: unique per router, time and new state.

A batch retried after a commit whose answer was lost (monitor.store.batch) wrote its transition
history rows a second time. They are now inserted with ON CONFLICT DO NOTHING on this key;
existing duplicates are removed first (the oldest row of each is kept).

Revision ID: 0006_transition_once
Revises: 0005_access
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_transition_once"
down_revision: str | None = "0005_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Remove duplicate transitions, then make (router_id, at, to_state) unique."""
    # A correlated EXISTS, served by the (router_id, at) index still in place: NOT IN over a
    # grouped subquery degrades to a quadratic scan on PostgreSQL once it outgrows work_mem.
    op.execute(
        "DELETE FROM health_transitions WHERE EXISTS ("
        " SELECT 1 FROM health_transitions AS older"
        " WHERE older.router_id = health_transitions.router_id"
        " AND older.at = health_transitions.at"
        " AND older.to_state = health_transitions.to_state"
        " AND older.id < health_transitions.id)"
    )
    op.drop_index("ix_health_transitions_router_id_at", table_name="health_transitions")
    op.create_index(
        "uq_health_transitions_once",
        "health_transitions",
        ["router_id", "at", "to_state"],
        unique=True,
    )


def downgrade() -> None:
    """Back to the plain (router_id, at) index (the duplicates removed stay removed)."""
    op.drop_index("uq_health_transitions_once", table_name="health_transitions")
    op.create_index("ix_health_transitions_router_id_at", "health_transitions", ["router_id", "at"])
