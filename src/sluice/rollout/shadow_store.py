"""Reads and batched writes of shadow pairs (the store's `shadow_pairs` table) as `ShadowPair`s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.rollout.shadow_pair import ShadowPair
from sluice.store import MODEL_MAX_CHARS, REQUEST_ID_MAX_CHARS, ShadowPairRow, clean_text

_TABLE = ShadowPairRow.__table__
_PAIR_FIELDS = tuple(field.name for field in fields(ShadowPair))
_COLUMNS = tuple(_TABLE.c[name] for name in _PAIR_FIELDS)
_BODIES = ("request_body", "primary_body", "shadow_body")
_BOOLEANS = ("primary_stream", "tokens_estimated")


def to_row(pair: ShadowPair) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in _PAIR_FIELDS:
        value = getattr(pair, name)
        row[name] = clean_text(value) if isinstance(value, str) else value
    row["request_id"] = row["request_id"][:REQUEST_ID_MAX_CHARS]
    row["model"] = row["model"][:MODEL_MAX_CHARS]
    return row


def from_row(row: RowMapping) -> ShadowPair:
    values = {name: row.get(name) for name in _PAIR_FIELDS}  # bodies may be left out of the query
    for name in _BOOLEANS:
        values[name] = bool(values[name])
    if values["exact_match"] is not None:
        values["exact_match"] = bool(values["exact_match"])
    return ShadowPair(**values)


async def insert_many(engine: AsyncEngine, pairs: Sequence[ShadowPair]) -> int:
    """Insert pairs in one transaction (one executemany); returns how many were inserted."""
    if not pairs:
        return 0
    rows = [to_row(pair) for pair in pairs]
    async with engine.begin() as connection:
        await connection.execute(insert(_TABLE), rows)
    return len(rows)


def _filtered(statement: Any, model: str | None, since: float | None) -> Any:
    if model is not None:
        statement = statement.where(_TABLE.c.model == model[:MODEL_MAX_CHARS])
    if since is not None:
        statement = statement.where(_TABLE.c.created_at >= since)
    return statement


async def recent(engine: AsyncEngine, *, model: str | None = None, since: float | None = None,
                 limit: int | None = 1000, bodies: bool = True) -> list[ShadowPair]:
    """Pairs newest first, optionally of one model and from `since` (unix s); `bodies=False` skips the texts."""
    columns = _COLUMNS if bodies else tuple(c for c in _COLUMNS if c.name not in _BODIES)
    statement = select(*columns).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    async with engine.connect() as connection:
        result = await connection.execute(_filtered(statement, model, since))
        return [from_row(row) for row in result.mappings()]


async def get(engine: AsyncEngine, request_ids: Sequence[str]) -> list[ShadowPair]:
    """The pairs (bodies included) of these requests."""
    if not request_ids:
        return []
    statement = select(*_COLUMNS).where(_TABLE.c.request_id.in_([rid[:REQUEST_ID_MAX_CHARS] for rid in request_ids]))
    async with engine.connect() as connection:
        return [from_row(row) for row in (await connection.execute(statement)).mappings()]


async def count(engine: AsyncEngine, *, model: str | None = None, since: float | None = None) -> int:
    statement = _filtered(select(func.count()).select_from(_TABLE), model, since)
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


__all__ = ["count", "from_row", "get", "insert_many", "recent", "to_row"]
