"""Transactions that lose a race on a unique index and try again: versions numbered inside their INSERT, label
rows created by two writers at once (the registries of models and prompts)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

CONFLICT_RETRIES = 50  # attempts at a write that lost a race (unique index) before giving up

T = TypeVar("T")


async def retrying(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work` in a transaction, again while it loses a race on a unique index (nothing of a lost try is kept)."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            async with engine.begin() as connection:
                return await work(connection)
        except IntegrityError:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # desynchronise the racers
    raise AssertionError("unreachable")


__all__ = ["CONFLICT_RETRIES", "retrying"]
