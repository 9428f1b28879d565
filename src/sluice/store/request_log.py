"""Reads and batched writes of the request log (`request_log` table) as `RequestRecord`s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.records import CLIENT_REQUEST_ID_MAX_CHARS, RequestRecord
from sluice.store.models import MODEL_MAX_CHARS, REQUEST_ID_MAX_CHARS, RequestLog

_TABLE = RequestLog.__table__
_RECORD_FIELDS = tuple(field.name for field in fields(RequestRecord))
_COLUMNS = tuple(_TABLE.c[name] for name in _RECORD_FIELDS)


def clean_text(value: str) -> str:
    """Make a string storable everywhere: PostgreSQL rejects NUL; UTF-8 rejects lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def encode_itl(itl_s: Sequence[float]) -> str | None:
    """Inter-token latencies as JSON text, rounded to microseconds; `None` when there are none."""
    if not itl_s:
        return None
    return orjson.dumps([round(gap, 6) for gap in itl_s]).decode()


def decode_itl(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    return tuple(float(gap) for gap in orjson.loads(text))


def to_row(record: RequestRecord) -> dict[str, Any]:
    """The `request_log` column values for one record (bodies stored exactly as given)."""
    row: dict[str, Any] = {}
    for name in _RECORD_FIELDS:
        value = getattr(record, name)
        row[name] = clean_text(value) if isinstance(value, str) else value
    row["request_id"] = row["request_id"][:REQUEST_ID_MAX_CHARS]
    if row["client_request_id"] is not None:  # the API edge already refuses longer ones; this guards the column
        row["client_request_id"] = row["client_request_id"][:CLIENT_REQUEST_ID_MAX_CHARS]
    row["model"] = row["model"][:MODEL_MAX_CHARS]
    row["itl_s"] = encode_itl(record.itl_s)
    row["annotations"] = record.annotations or None  # NULL, not `{}`: most requests carry none
    return row


def from_row(row: RowMapping) -> RequestRecord:
    values = {name: row[name] for name in _RECORD_FIELDS}
    values["itl_s"] = decode_itl(values["itl_s"])
    values["stream"] = bool(values["stream"])
    values["tokens_estimated"] = bool(values["tokens_estimated"])
    values["annotations"] = values["annotations"] or {}
    return RequestRecord(**values)


async def insert_many(engine: AsyncEngine, records: Sequence[RequestRecord]) -> int:
    """Insert records in one transaction (one executemany); returns how many were inserted.

    A duplicate `request_id` (the gateway's own id) raises `sqlalchemy.exc.IntegrityError` and inserts none of
    the batch; `client_request_id` may repeat freely.
    """
    if not records:
        return 0
    rows = [to_row(record) for record in records]
    async with engine.begin() as connection:
        await connection.execute(insert(_TABLE), rows)
    return len(rows)


def _filtered(statement: Any, model: str | None, since: float | None) -> Any:
    if model is not None:
        statement = statement.where(_TABLE.c.model == model)
    if since is not None:
        statement = statement.where(_TABLE.c.created_at >= since)
    return statement


async def recent(
    engine: AsyncEngine, limit: int = 20, *, model: str | None = None, since: float | None = None
) -> list[RequestRecord]:
    """The newest records first (by arrival time), optionally for one model and from `since` (unix s)."""
    statement = select(*_COLUMNS).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc()).limit(limit)
    async with engine.connect() as connection:
        result = await connection.execute(_filtered(statement, model, since))
        return [from_row(row) for row in result.mappings()]


async def get(engine: AsyncEngine, request_id: str) -> RequestRecord | None:
    """The record with this gateway request id (the `x-request-id` response header), if any."""
    statement = select(*_COLUMNS).where(_TABLE.c.request_id == request_id[:REQUEST_ID_MAX_CHARS])
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).mappings().first()
    return None if row is None else from_row(row)


async def find(engine: AsyncEngine, any_id: str, limit: int = 20) -> list[RequestRecord]:
    """Records carrying `any_id` as their gateway id (at most one, listed first) or as the client's own
    `x-request-id` (any number, since callers choose them: newest first, up to `limit` in all)."""
    by_gateway_id = select(*_COLUMNS).where(_TABLE.c.request_id == any_id[:REQUEST_ID_MAX_CHARS])
    by_client_id = (select(*_COLUMNS).where(_TABLE.c.client_request_id == any_id)
                    .order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc()).limit(limit))
    async with engine.connect() as connection:
        found = [from_row(row) for row in (await connection.execute(by_gateway_id)).mappings()]
        if len(any_id) <= CLIENT_REQUEST_ID_MAX_CHARS:
            found += [from_row(row) for row in (await connection.execute(by_client_id)).mappings()
                      if row["request_id"] != any_id]
    return found[:limit]


async def count(engine: AsyncEngine, *, model: str | None = None, since: float | None = None) -> int:
    statement = _filtered(select(func.count()).select_from(_TABLE), model, since)
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


async def newest_row_id(engine: AsyncEngine) -> int:
    """The highest row id so far (0 when empty): a cursor for `rows_after`."""
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.max(_TABLE.c.id)))).scalar_one() or 0)


async def rows_after(
    engine: AsyncEngine, row_id: int, *, model: str | None = None, limit: int = 1000
) -> list[tuple[int, RequestRecord]]:
    """Rows written after the row `row_id`, oldest first, with their row ids (for `logs tail --follow`)."""
    statement = select(_TABLE.c.id, *_COLUMNS).where(_TABLE.c.id > row_id).order_by(_TABLE.c.id).limit(limit)
    async with engine.connect() as connection:
        result = await connection.execute(_filtered(statement, model, None))
        return [(int(row["id"]), from_row(row)) for row in result.mappings()]


__all__ = [
    "clean_text",
    "count",
    "decode_itl",
    "encode_itl",
    "find",
    "from_row",
    "get",
    "insert_many",
    "newest_row_id",
    "recent",
    "rows_after",
    "to_row",
]
