"""The durable store: SQLAlchemy models, repositories and Alembic migrations (SQLite or PostgreSQL)."""

from sluice.store import request_log
from sluice.store.db import (
    async_url,
    create_engine,
    create_sync_engine,
    current_revision,
    display_url,
    head_revision,
    migrate,
    migrate_sync,
    sync_url,
)
from sluice.store.models import Base, RequestLog

__all__ = [
    "Base",
    "RequestLog",
    "async_url",
    "create_engine",
    "create_sync_engine",
    "current_revision",
    "display_url",
    "head_revision",
    "migrate",
    "migrate_sync",
    "request_log",
    "sync_url",
]
