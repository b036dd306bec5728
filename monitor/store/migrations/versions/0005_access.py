"""Access: status API tokens (hashed), the audit (passwords, report-lost), encrypted passwords.

Revision ID: 0005_access
Revises: 0004_support_requests
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_access"
down_revision: str | None = "0004_support_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = "'la_user', 'trust_user', 'school_technical_contact', 'nominated_orderer', 'programme'"
OUTCOMES = "'shown', 'reported', 'refused', 'not_found', 'unavailable'"


def upgrade() -> None:
    """Create api_tokens, access_audit and device_passwords."""
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("revoked_at", stamp, nullable=True),
        sa.CheckConstraint(f"role IN ({ROLES})", name=op.f("ck_api_tokens_role")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_api_tokens_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_tokens_secret_hash")),
    )
    op.create_index(op.f("ix_api_tokens_organisation_id"), "api_tokens", ["organisation_id"])
    op.create_table(
        "access_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", stamp, nullable=False),
        sa.Column("token_id", sa.String(length=16), nullable=False),
        sa.Column("who", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=True),
        sa.Column("device_serial", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.CheckConstraint(f"outcome IN ({OUTCOMES})", name=op.f("ck_access_audit_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_audit")),
    )
    op.create_index("ix_access_audit_device_serial_at", "access_audit", ["device_serial", "at"])
    op.create_table(
        "device_passwords",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("bios", sa.Text(), nullable=False),
        sa.Column("admin", sa.Text(), nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["serial"],
            ["devices.serial"],
            name=op.f("fk_device_passwords_serial_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_device_passwords")),
    )


def downgrade() -> None:
    """Drop the three tables (tokens, the audit and the stored passwords are lost)."""
    op.drop_table("device_passwords")
    op.drop_index("ix_access_audit_device_serial_at", table_name="access_audit")
    op.drop_table("access_audit")
    op.drop_index(op.f("ix_api_tokens_organisation_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
