"""The durable store: SQLAlchemy models, the request log, Alembic migrations (SQLite or PostgreSQL). A concern's
repository of its own tables lives with it (cost/keys_store.py, rollout/shadow_store.py, on these models)."""

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
from sluice.store.models import MODEL_MAX_CHARS, REQUEST_ID_MAX_CHARS, Base, RequestLog, ShadowPairRow, VirtualKeyRow
from sluice.store.request_log import clean_text

__all__ = [
    "MODEL_MAX_CHARS",
    "REQUEST_ID_MAX_CHARS",
    "Base",
    "RequestLog",
    "ShadowPairRow",
    "VirtualKeyRow",
    "async_url",
    "clean_text",
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
