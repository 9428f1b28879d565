"""Request log: `annotations`, a JSON column for what the request's stages added (`<concern>.<name>` keys).

A feature that wants a field in the log annotates the request instead of adding a column and a migration;
docs/request-log.md lists the keys. NULL when no stage annotated the request.

Revision ID: 0007_request_log_annotations
Revises: 0006_client_request_id
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_request_log_annotations"
down_revision: str | None = "0006_client_request_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("annotations", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("annotations")
