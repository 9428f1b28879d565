"""Create the request_log table.

Revision ID: 0001_request_log
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_request_log"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("backend_type", sa.Text(), nullable=True),
        sa.Column("upstream_model", sa.Text(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.Text(), nullable=True),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("ttft_s", sa.Double(), nullable=True),
        sa.Column("tpot_s", sa.Double(), nullable=True),
        sa.Column("itl_s", sa.Text(), nullable=True),
        sa.Column("e2e_s", sa.Double(), nullable=True),
        sa.Column("queue_s", sa.Double(), nullable=False),
        sa.Column("upstream_s", sa.Double(), nullable=False),
        sa.Column("overhead_s", sa.Double(), nullable=False),
        sa.Column("user", sa.Text(), nullable=True),
        sa.Column("client_ip", sa.Text(), nullable=True),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_log")),
    )
    op.create_index("ix_request_log_created_at", "request_log", ["created_at"])
    op.create_index("ix_request_log_model_created_at", "request_log", ["model", "created_at"])
    op.create_index("ux_request_log_request_id", "request_log", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_request_log_request_id", table_name="request_log")
    op.drop_index("ix_request_log_model_created_at", table_name="request_log")
    op.drop_index("ix_request_log_created_at", table_name="request_log")
    op.drop_table("request_log")
