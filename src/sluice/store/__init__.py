"""The durable store: SQLAlchemy models, the request log, Alembic migrations (SQLite or PostgreSQL). A concern's
repository of its own tables lives with it (cost/keys_store.py, rollout/shadow_store.py, on these models).

The rollout's repository (`deployments`, its records) loads on first use: the request log's readers (`sluice
logs`, the cost reports) never need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
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
    sqlite_path,
    sync_url,
)
from sluice.store.models import (
    MODEL_MAX_CHARS,
    REQUEST_ID_MAX_CHARS,
    Base,
    EvalRunRow,
    PromptLabelEventRow,
    PromptLabelRow,
    PromptVersionRow,
    RegistryAliasEventRow,
    RegistryAliasRow,
    RegistryVersionRow,
    RequestLog,
    ShadowPairRow,
    VirtualKeyRow,
)
from sluice.store.request_log import clean_text, insert_many
from sluice.store.transactions import CONFLICT_RETRIES, retrying

if TYPE_CHECKING:
    from sluice.store import deployments
    from sluice.store.deployments import AuditEvent, VerdictRecord

_ON_FIRST_USE = {  # name -> module (the submodule `deployments` is loaded by the import that names it)
    "AuditEvent": "sluice.store.deployments",
    "VerdictRecord": "sluice.store.deployments",
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "CONFLICT_RETRIES",
    "MODEL_MAX_CHARS",
    "REQUEST_ID_MAX_CHARS",
    "AuditEvent",
    "Base",
    "EvalRunRow",
    "PromptLabelEventRow",
    "PromptLabelRow",
    "PromptVersionRow",
    "RegistryAliasEventRow",
    "RegistryAliasRow",
    "RegistryVersionRow",
    "RequestLog",
    "ShadowPairRow",
    "VerdictRecord",
    "VirtualKeyRow",
    "async_url",
    "clean_text",
    "create_engine",
    "create_sync_engine",
    "current_revision",
    "deployments",
    "display_url",
    "head_revision",
    "insert_many",
    "migrate",
    "migrate_sync",
    "request_log",
    "retrying",
    "sqlite_path",
    "sync_url",
]
