"""The request-time resolver: a `name@ref` read once and kept, dropped on every replica when the prompt changes
(a notice on the shared state's `prompts` channel: in-process, and through a real Redis between two replicas)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.prompts import (
    CHANGES_CHANNEL,
    PromptNotFound,
    PromptResolver,
    PromptSpec,
    TemplateError,
    Variable,
    announce_change,
    create_version,
    set_label,
)
from sluice.state import MemoryState, RedisState
from sluice.store import create_engine, migrate
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401


def spec(greeting: str) -> PromptSpec:
    return PromptSpec(kind="text", template=greeting + " {{ name }}", variables=(Variable("name"),),
                      config={"temperature": 0.1})


async def two_versions(engine: AsyncEngine) -> None:
    await create_version(engine, "support", spec("Hello"))
    await create_version(engine, "support", spec("Hi"))
    await set_label(engine, "support", "production", 1)


async def test_a_resolution_is_kept_until_the_prompt_changes(engine: AsyncEngine) -> None:
    await two_versions(engine)
    state = MemoryState()
    resolver = PromptResolver(engine)
    resolver.listen(state)
    version, rendered = await resolver.render("support@production", {"name": "Ana"})
    assert (version.version, rendered.text, dict(rendered.config)) == (1, "Hello Ana", {"temperature": 0.1})

    await set_label(engine, "support", "production", 2)  # stored, not yet announced
    assert (await resolver.resolve("support@production")).version == 1  # kept: no store read
    await announce_change(state, "support")
    assert (await resolver.resolve("support@production")).version == 2
    assert (await resolver.resolve("support")).version == 2

    await create_version(engine, "support", spec("Hey"))
    resolver.changed(None)  # notices may have been lost (a reconnect): everything is read again
    assert (await resolver.resolve("support")).version == 3


async def test_a_kept_resolution_is_read_again_after_its_ttl(engine: AsyncEngine) -> None:
    await two_versions(engine)
    now = [0.0]
    resolver = PromptResolver(engine, ttl_s=60.0, clock=lambda: now[0])
    assert (await resolver.resolve("support@production")).version == 1
    await set_label(engine, "support", "production", 2)
    now[0] = 59.0
    assert (await resolver.resolve("support@production")).version == 1
    now[0] = 60.0
    assert (await resolver.resolve("support@production")).version == 2


async def test_unknown_refs_and_bad_variables_raise_and_are_not_kept(engine: AsyncEngine) -> None:
    await two_versions(engine)
    resolver = PromptResolver(engine)
    with pytest.raises(PromptNotFound, match="no label 'staging'"):
        await resolver.resolve("support@staging")
    await set_label(engine, "support", "staging", 2)
    assert (await resolver.resolve("support@staging")).version == 2  # the miss was not kept
    with pytest.raises(TemplateError, match="missing variable 'name'"):
        await resolver.render("support@staging", {})


async def test_a_change_announced_on_one_replica_reaches_the_other_through_redis(redis_url: str,
                                                                                tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    await migrate(url)
    engine = create_engine(url)
    here, there = RedisState(redis_url), RedisState(redis_url)
    resolver = PromptResolver(engine)
    resolver.listen(there)  # first: it has dropped the prompt by the time the test's own handler hears of it
    heard: asyncio.Queue[str | None] = asyncio.Queue()
    there.subscribe(CHANGES_CHANNEL, heard.put_nowait)
    await here.start()
    await there.start()
    try:
        await two_versions(engine)
        assert (await resolver.resolve("support@production")).version == 1
        await set_label(engine, "support", "production", 2)
        await announce_change(here, "support")
        assert await asyncio.wait_for(heard.get(), timeout=5) == "support"
        assert (await resolver.resolve("support@production")).version == 2
    finally:
        await here.close()
        await there.close()
        await engine.dispose()
