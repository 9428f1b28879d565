"""The model registry (registry/): numbered versions of each model, aliases that point at one, alias moves.

Revision ID: 0008_model_registry
Revises: 0007_request_log_annotations
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_model_registry"
down_revision: str | None = "0007_request_log_annotations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("base_revision", sa.Text(), nullable=True),
        sa.Column("adapter_uri", sa.Text(), nullable=True),
        sa.Column("adapter_sha256", sa.String(64), nullable=True),
        sa.Column("adapter_rank", sa.Integer(), nullable=True),
        sa.Column("adapter_alpha", sa.Double(), nullable=True),
        sa.Column("adapter_base_model", sa.Text(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registry_versions"),
    )
    op.create_index("ux_registry_versions_model_version", "registry_versions", ["model", "version"], unique=True)
    op.create_table(
        "registry_aliases",
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("model", "alias", name="pk_registry_aliases"),
    )
    op.create_table(
        "registry_alias_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registry_alias_events"),
    )
    op.create_index("ix_registry_alias_events_model_at", "registry_alias_events", ["model", "at"])


def downgrade() -> None:
    op.drop_index("ix_registry_alias_events_model_at", table_name="registry_alias_events")
    op.drop_table("registry_alias_events")
    op.drop_table("registry_aliases")
    op.drop_index("ux_registry_versions_model_version", table_name="registry_versions")
    op.drop_table("registry_versions")
