"""Virtual keys with budgets and limits (cost/keys.py): settings and the SHA-256 of each secret.

Revision ID: 0004_virtual_keys
Revises: 0003_deployments
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_virtual_keys"
down_revision: str | None = "0003_deployments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_valid_until", sa.Double(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("budget_day_usd", sa.Double(), nullable=True),
        sa.Column("budget_month_usd", sa.Double(), nullable=True),
        sa.Column("budget_total_usd", sa.Double(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_keys"),
    )
    op.create_index("ix_virtual_keys_team", "virtual_keys", ["team"])


def downgrade() -> None:
    op.drop_index("ix_virtual_keys_team", table_name="virtual_keys")
    op.drop_table("virtual_keys")
