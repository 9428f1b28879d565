"""Request log: the client's `x-request-id` in a column of its own (indexed, not unique).

`request_id` stays unique, and from now on always holds the gateway's own id: a client-chosen id there let
one caller's requests displace another's rows. Rows written before keep whatever id they were logged under.

Revision ID: 0006_client_request_id
Revises: 0005_shadow_pairs
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_client_request_id"
down_revision: str | None = "0005_shadow_pairs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("client_request_id", sa.String(128), nullable=True))
    # Partial: most requests carry no client id, and their rows should not pay for an index entry.
    only_set = sa.text("client_request_id IS NOT NULL")
    op.create_index("ix_request_log_client_request_id", "request_log", ["client_request_id"],
                    sqlite_where=only_set, postgresql_where=only_set)


def downgrade() -> None:
    op.drop_index("ix_request_log_client_request_id", table_name="request_log")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("client_request_id")
