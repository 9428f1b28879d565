"""Eval runs recorded against registry versions: summary, gate verdict and compact case results (evals/).

Revision ID: 0009_eval_runs
Revises: 0008_model_registry
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_eval_runs"
down_revision: str | None = "0008_model_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("suite", sa.Text(), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("gate_status", sa.String(16), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_eval_runs"),
    )
    op.create_index("ix_eval_runs_model_version_created_at", "eval_runs", ["model", "version", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_eval_runs_model_version_created_at", table_name="eval_runs")
    op.drop_table("eval_runs")
