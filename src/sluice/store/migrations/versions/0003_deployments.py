"""Deployments, their audit trail, canary verdicts and shadow pairs (rollout/).

Revision ID: 0003_deployments
Revises: 0002_request_log_cost
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003_deployments"
down_revision: str | None = "0002_request_log_cost"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # tables arrive with their feature


def downgrade() -> None:
    pass
