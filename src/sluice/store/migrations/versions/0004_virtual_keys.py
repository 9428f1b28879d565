"""Virtual keys with budgets and limits (cost/).

Revision ID: 0004_virtual_keys
Revises: 0003_deployments
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004_virtual_keys"
down_revision: str | None = "0003_deployments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # tables arrive with their feature


def downgrade() -> None:
    pass
