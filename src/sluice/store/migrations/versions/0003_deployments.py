"""Deployments, their audit trail, canary runs and verdicts, and the canary driver's lease (rollout/).

Revision ID: 0003_deployments
Revises: 0002_request_log_cost
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_deployments"
down_revision: str | None = "0002_request_log_cost"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_deployments")),
    )
    op.create_table(
        "deployment_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    op.create_index("ix_deployment_events_model_id", "deployment_events", ["model", "id"])
    op.create_table(
        "canary_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.Double(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_runs")),
    )
    op.create_index("ix_canary_runs_model_id", "canary_runs", ["model", "id"])
    op.create_index("ix_canary_runs_state", "canary_runs", ["state"])
    op.create_table(
        "canary_verdicts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("window_end", sa.Double(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_verdicts")),
    )
    op.create_index("ix_canary_verdicts_run_id_id", "canary_verdicts", ["run_id", "id"])
    op.create_table(
        "rollout_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollout_leases")),
    )


def downgrade() -> None:
    op.drop_table("rollout_leases")
    op.drop_index("ix_canary_verdicts_run_id_id", table_name="canary_verdicts")
    op.drop_table("canary_verdicts")
    op.drop_index("ix_canary_runs_state", table_name="canary_runs")
    op.drop_index("ix_canary_runs_model_id", table_name="canary_runs")
    op.drop_table("canary_runs")
    op.drop_index("ix_deployment_events_model_id", table_name="deployment_events")
    op.drop_table("deployment_events")
    op.drop_table("deployments")
