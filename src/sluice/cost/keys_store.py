"""Reads and writes of the `virtual_keys` table (store/) as `VirtualKey`s, and key spend from the request log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

import orjson
from sqlalchemy import case, func, insert, literal, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cost.keys import VirtualKey
from sluice.store import RequestLog, VirtualKeyRow

_TABLE = VirtualKeyRow.__table__
_LOG = RequestLog.__table__


def to_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """`VirtualKey` field values as column values (JSON for models and metadata)."""
    row = dict(values)
    if "models" in row:
        row["models"] = orjson.dumps(list(row["models"])).decode() if row["models"] else None
    if "metadata" in row:
        metadata = row.pop("metadata")
        row["metadata_json"] = orjson.dumps(dict(metadata)).decode() if metadata else None
    return row


def from_row(row: RowMapping) -> VirtualKey:
    values = {column.name: row[column.name] for column in _TABLE.columns}
    models = values.pop("models")
    metadata = values.pop("metadata_json")
    return VirtualKey(**values, models=tuple(orjson.loads(models)) if models else (),
                      metadata=orjson.loads(metadata) if metadata else {})


async def insert_key(engine: AsyncEngine, key: VirtualKey) -> None:
    values = {field.name: getattr(key, field.name) for field in fields(key)}
    async with engine.begin() as connection:
        await connection.execute(insert(_TABLE).values(to_row(values)))


async def get_key(engine: AsyncEngine, key_id: str) -> VirtualKey | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(_TABLE).where(_TABLE.c.id == key_id))).mappings().first()
    return None if row is None else from_row(row)


async def list_keys(engine: AsyncEngine, *, team: str | None = None, owner: str | None = None,
                    include_revoked: bool = False) -> list[VirtualKey]:
    statement = select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.id)
    if team is not None:
        statement = statement.where(_TABLE.c.team == team)
    if owner is not None:
        statement = statement.where(_TABLE.c.owner == owner)
    if not include_revoked:
        statement = statement.where(_TABLE.c.revoked_at.is_(None))
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).mappings().all()
    return [from_row(row) for row in rows]


async def update_key(engine: AsyncEngine, key_id: str, values: Mapping[str, Any]) -> VirtualKey | None:
    """Set the given fields (VirtualKey names); None when no such key."""
    async with engine.begin() as connection:
        result = await connection.execute(update(_TABLE).where(_TABLE.c.id == key_id).values(to_row(values)))
        if result.rowcount == 0:
            return None
        row = (await connection.execute(select(_TABLE).where(_TABLE.c.id == key_id))).mappings().first()
    return None if row is None else from_row(row)


async def any_keys(engine: AsyncEngine) -> bool:
    """Whether a virtual key was ever created (revoked ones count: revoking the last key must not open the gateway)."""
    async with engine.connect() as connection:
        return (await connection.execute(select(literal(1)).select_from(_TABLE).limit(1))).first() is not None


async def touch(engine: AsyncEngine, key_ids: Iterable[str], at: float) -> None:
    ids = list(key_ids)
    if not ids:
        return
    async with engine.begin() as connection:
        await connection.execute(update(_TABLE).where(_TABLE.c.id.in_(ids)).values(last_used_at=at))


async def spend_since(engine: AsyncEngine, key_id: str, since: float) -> float:
    """USD the request log holds for `key_id` from `since` (unix seconds) on."""
    statement = (select(func.coalesce(func.sum(_LOG.c.cost_usd), 0.0))
                 .where(_LOG.c.key_id == key_id, _LOG.c.created_at >= since))
    async with engine.connect() as connection:
        return float((await connection.execute(statement)).scalar_one())


async def spend_summary(engine: AsyncEngine, key_id: str, day_start: float, month_start: float,
                        ) -> tuple[float, float, float, int]:
    """(today, this month, all time) USD and the request count, from the request log, in one query."""
    cost = func.coalesce(_LOG.c.cost_usd, 0.0)
    statement = select(
        func.coalesce(func.sum(case((_LOG.c.created_at >= day_start, cost), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((_LOG.c.created_at >= month_start, cost), else_=0.0)), 0.0),
        func.coalesce(func.sum(cost), 0.0),
        func.count(),
    ).where(_LOG.c.key_id == key_id)
    async with engine.connect() as connection:
        day, month, total, count = (await connection.execute(statement)).one()
    return float(day), float(month), float(total), int(count)


__all__ = ["any_keys", "get_key", "insert_key", "list_keys", "spend_since", "spend_summary", "touch",
           "update_key"]
