"""Shadow pairs: the primary's and the shadow's answer to each mirrored request (rollout/shadow.py).

Revision ID: 0005_shadow_pairs
Revises: 0004_virtual_keys
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_shadow_pairs"
down_revision: str | None = "0004_virtual_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shadow_pairs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("primary_target", sa.Text(), nullable=True),
        sa.Column("primary_model", sa.Text(), nullable=True),
        sa.Column("shadow_target", sa.Text(), nullable=False),
        sa.Column("shadow_model", sa.Text(), nullable=False),
        sa.Column("primary_stream", sa.Boolean(), nullable=False),
        sa.Column("primary_status", sa.Integer(), nullable=False),
        sa.Column("shadow_status", sa.Integer(), nullable=False),
        sa.Column("primary_error_type", sa.Text(), nullable=True),
        sa.Column("primary_error", sa.Text(), nullable=True),
        sa.Column("shadow_error_type", sa.Text(), nullable=True),
        sa.Column("shadow_error", sa.Text(), nullable=True),
        sa.Column("primary_e2e_s", sa.Double(), nullable=True),
        sa.Column("primary_ttft_s", sa.Double(), nullable=True),
        sa.Column("shadow_e2e_s", sa.Double(), nullable=True),
        sa.Column("primary_prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("primary_completion_tokens", sa.Integer(), nullable=True),
        sa.Column("shadow_prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("shadow_completion_tokens", sa.Integer(), nullable=True),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("primary_cost_usd", sa.Double(), nullable=True),
        sa.Column("shadow_cost_usd", sa.Double(), nullable=True),
        sa.Column("exact_match", sa.Boolean(), nullable=True),
        sa.Column("length_ratio", sa.Double(), nullable=True),
        sa.Column("similarity", sa.Double(), nullable=True),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("primary_body", sa.Text(), nullable=True),
        sa.Column("shadow_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_pairs")),
    )
    op.create_index("ix_shadow_pairs_model_created_at", "shadow_pairs", ["model", "created_at"])
    op.create_index("ix_shadow_pairs_request_id", "shadow_pairs", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_pairs_request_id", table_name="shadow_pairs")
    op.drop_index("ix_shadow_pairs_model_created_at", table_name="shadow_pairs")
    op.drop_table("shadow_pairs")
