"""The prompt registry (prompts/): immutable numbered versions of each prompt, labels that point at one, label moves.

Revision ID: 0010_prompts
Revises: 0009_eval_runs
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_prompts"
down_revision: str | None = "0009_eval_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("semver", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
    )
    op.create_index("ux_prompt_versions_name_version", "prompt_versions", ["name", "version"], unique=True)
    op.create_index("ux_prompt_versions_name_semver", "prompt_versions", ["name", "semver"], unique=True)
    op.create_table(
        "prompt_labels",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", "label", name="pk_prompt_labels"),
    )
    op.create_table(
        "prompt_label_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_label_events"),
    )
    op.create_index("ix_prompt_label_events_name_label_id", "prompt_label_events", ["name", "label", "id"])


def downgrade() -> None:
    op.drop_index("ix_prompt_label_events_name_label_id", table_name="prompt_label_events")
    op.drop_table("prompt_label_events")
    op.drop_table("prompt_labels")
    op.drop_index("ux_prompt_versions_name_semver", table_name="prompt_versions")
    op.drop_index("ux_prompt_versions_name_version", table_name="prompt_versions")
    op.drop_table("prompt_versions")
