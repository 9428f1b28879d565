"""Request log: virtual key, team, cost, cache hit, rollout role and attempts per request.

Revision ID: 0002_request_log_cost
Revises: 0001_request_log
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_request_log_cost"
down_revision: str | None = "0001_request_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("team", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cost_usd", sa.Double(), nullable=True))
        batch.add_column(sa.Column("cache_hit", sa.String(16), nullable=True))
        batch.add_column(sa.Column("route_role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_request_log_key_id_created_at", "request_log", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_request_log_key_id_created_at", table_name="request_log")
    with op.batch_alter_table("request_log") as batch:
        for column in ("attempts", "route_role", "cache_hit", "cost_usd", "team", "key_id"):
            batch.drop_column(column)
