"""The prompt registry's store: versions numbered by the store and immutable, semvers unique per prompt, labels
that move atomically with an audit trail, rollback from that trail; against a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.prompts import (
    Message,
    PromptConflict,
    PromptError,
    PromptNotFound,
    PromptSpec,
    TemplateError,
    Variable,
    create_version,
    delete_label,
    get_version,
    label_history,
    labels_of,
    list_prompts,
    list_versions,
    rollback_label,
    set_label,
)
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401


def spec(template: str = "Hello {{ name }}", **overrides: object) -> PromptSpec:
    values: dict[str, object] = dict(kind="text", template=template, variables=(Variable("name"),))
    values.update(overrides)
    return PromptSpec(**values)  # type: ignore[arg-type]


# --- versions ---------------------------------------------------------------------------------------------

async def test_versions_are_numbered_per_prompt_and_the_newest_is_latest(engine: AsyncEngine) -> None:
    first = await create_version(engine, "support", spec())
    other = await create_version(engine, "other.prompt_v2", spec())
    second = await create_version(engine, "support", spec("Hi {{ name }}"))
    assert [first.version, second.version, other.version] == [1, 2, 1]
    assert second.labels == ("latest",) and second.ref() == "support@2"
    assert (await get_version(engine, "support")).version == 2
    assert (await get_version(engine, "support@latest")).version == 2
    assert (await get_version(engine, "support@1")).labels == ()


async def test_concurrent_creates_get_distinct_consecutive_versions(engine: AsyncEngine) -> None:
    created = await asyncio.gather(*(create_version(engine, "support", spec(f"{n}: {{{{ name }}}}"))
                                     for n in range(10)))
    assert sorted(version.version for version in created) == list(range(1, 11))


async def test_a_version_round_trips_every_field(engine: AsyncEngine) -> None:
    full = PromptSpec(
        kind="chat", messages=(Message("system", "Be {{ tone }}. 👋"), Message("user", "{{ question }}\n")),
        variables=(Variable("question", description="what they asked"), Variable("tone", default="calm"),
                   Variable("extras", default={"a": [1, 2]})),
        config={"model": "gpt-4o-mini", "temperature": 0.2, "stop": ["\n\n"],
                "response_format": {"type": "json_object"}},
        semver="1.0.0-rc.1", message="first cut", author="ana")
    created = await create_version(engine, "support", full)
    stored = await get_version(engine, "support@1.0.0-rc.1")
    assert stored == created and stored.spec == full
    assert stored.content_hash == full.content_hash()
    assert stored.to_json() == {
        "name": "support", "version": 1, "semver": "1.0.0-rc.1", "kind": "chat", "template": None,
        "messages": [{"role": "system", "content": "Be {{ tone }}. 👋"},
                     {"role": "user", "content": "{{ question }}\n"}],
        "variables": [{"name": "question", "description": "what they asked"}, {"name": "tone", "default": "calm"},
                      {"name": "extras", "default": {"a": [1, 2]}}],
        "config": full.config, "message": "first cut", "author": "ana", "content_hash": full.content_hash(),
        "created_at": stored.created_at, "labels": ["latest"]}


async def test_a_bad_version_is_refused_and_nothing_is_stored(engine: AsyncEngine) -> None:
    with pytest.raises(TemplateError, match="undeclared variable 'other'"):
        await create_version(engine, "support", spec("{{ name }} {{ other }}"))
    with pytest.raises(PromptError, match="bad prompt name"):
        await create_version(engine, "has space", spec())
    with pytest.raises(PromptNotFound, match="unknown prompt 'support'; prompts: none yet"):
        await list_versions(engine, "support")


async def test_a_semver_names_one_version_of_a_prompt(engine: AsyncEngine) -> None:
    await create_version(engine, "support", spec(semver="1.0.0"))
    await create_version(engine, "other", spec(semver="1.0.0"))  # per prompt
    with pytest.raises(PromptConflict, match=r"support already has semver 1\.0\.0 \(version 1\)"):
        await create_version(engine, "support", spec("x {{ name }}", semver="1.0.0"))
    racing = await asyncio.gather(*(create_version(engine, "support", spec(f"{n} {{{{ name }}}}", semver="2.0.0"))
                                    for n in range(3)), return_exceptions=True)
    assert sorted(type(result).__name__ for result in racing) == ["PromptConflict", "PromptConflict", "PromptVersion"]
    assert [version.spec.semver for version in await list_versions(engine, "support")] == ["1.0.0", "2.0.0"]


async def test_unknown_prompt_version_semver_or_label_names_what_exists(engine: AsyncEngine) -> None:
    await create_version(engine, "support", spec(semver="1.0.0"))
    await create_version(engine, "support", spec("Hi {{ name }}"))
    await set_label(engine, "support", "staging", 1)
    for ref, message in [
        ("nothing", "unknown prompt 'nothing'; prompts: support"),
        ("nothing@production", "unknown prompt 'nothing'; prompts: support"),
        ("support@7", r"support has no version 7; its versions run from 1 to 2 \(e\.g\. support@2\)"),
        ("support@production", "support has no label 'production'; its labels: staging"),
        ("support@3.0.0", r"support has no version with semver 3\.0\.0; its semvers: 1\.0\.0"),
    ]:
        with pytest.raises(PromptNotFound, match=message):
            await get_version(engine, ref)


async def test_list_prompts_summarises_kind_versions_and_labels(engine: AsyncEngine) -> None:
    await create_version(engine, "b-chat", PromptSpec(kind="chat", messages=(Message("user", "hi"),)))
    await create_version(engine, "a-text", spec())
    await create_version(engine, "a-text", spec("Yo {{ name }}", semver="0.2.0"))
    await set_label(engine, "a-text", "production", 1)
    summaries = await list_prompts(engine)
    assert [(s.name, s.kind, s.versions, s.latest, s.latest_semver, s.labels) for s in summaries] == [
        ("a-text", "text", 2, 2, "0.2.0", {"production": 1}), ("b-chat", "chat", 1, 1, None, {})]
    versions = await list_versions(engine, "a-text")
    assert [(version.version, version.labels) for version in versions] == [(1, ("production",)), (2, ("latest",))]


# --- labels -----------------------------------------------------------------------------------------------

async def test_labels_move_atomically_and_every_move_is_audited(engine: AsyncEngine) -> None:
    for n in range(3):
        await create_version(engine, "support", spec(f"v{n} {{{{ name }}}}", semver=f"1.{n}.0"))
    created = await set_label(engine, "support", "production", 1, actor="ana", reason="first release")
    assert (created.action, created.from_version, created.to_version) == ("move", None, 1)
    await set_label(engine, "support", "staging", "1.2.0")  # by semver
    moved = await set_label(engine, "support", "production", "staging", actor="bo", reason="promote")  # by label
    assert (moved.from_version, moved.to_version, moved.actor, moved.reason) == (1, 3, "bo", "promote")
    assert (await get_version(engine, "support@production")).labels == ("production", "staging", "latest")
    assert await labels_of(engine, "support") == {"production": 3, "staging": 3}
    history = await label_history(engine, "support")
    assert [(e.label, e.from_version, e.to_version) for e in history] == [
        ("production", None, 1), ("staging", None, 3), ("production", 1, 3)]
    assert [e.to_version for e in await label_history(engine, "support", "staging")] == [3]


async def test_a_label_to_a_missing_version_changes_nothing(engine: AsyncEngine) -> None:
    await create_version(engine, "support", spec())
    await set_label(engine, "support", "production", 1)
    with pytest.raises(PromptNotFound, match="no version 9"):
        await set_label(engine, "support", "production", 9)
    with pytest.raises(PromptError, match="'latest' is not a label you can set"):
        await set_label(engine, "support", "latest", 1)
    assert (await get_version(engine, "support@production")).version == 1
    assert len(await label_history(engine, "support")) == 1


async def test_concurrent_moves_of_one_label_both_land_in_order_and_both_are_audited(engine: AsyncEngine) -> None:
    for n in range(5):
        await create_version(engine, "support", spec(f"v{n} {{{{ name }}}}"))
    await asyncio.gather(*(set_label(engine, "support", "production", version, actor=f"user{version}")
                           for version in (1, 2, 3, 4, 5)))
    history = await label_history(engine, "support", "production")
    assert len(history) == 5 and history[0].from_version is None
    assert all(later.from_version == earlier.to_version for earlier, later in itertools.pairwise(history))
    assert (await get_version(engine, "support@production")).version == history[-1].to_version  # the last one won


async def test_rollback_moves_a_label_back_along_its_audit_trail(engine: AsyncEngine) -> None:
    for n in range(3):
        await create_version(engine, "support", spec(f"v{n} {{{{ name }}}}"))
    with pytest.raises(PromptNotFound, match="no label 'production'"):
        await rollback_label(engine, "support", "production")
    await set_label(engine, "support", "production", 1)
    with pytest.raises(PromptConflict, match="was created at version 1 and has not moved since"):
        await rollback_label(engine, "support", "production")
    await set_label(engine, "support", "production", 3)
    back = await rollback_label(engine, "support", actor="oncall", reason="bad answers")
    assert (back.action, back.from_version, back.to_version, back.reason) == ("rollback", 3, 1, "bad answers")
    assert (await get_version(engine, "support@production")).version == 1
    again = await rollback_label(engine, "support", "production")  # undoes the rollback
    assert (again.from_version, again.to_version) == (1, 3)
    await delete_label(engine, "support", "production", reason="retired")
    restored = await rollback_label(engine, "support", "production")  # a delete is a move too
    assert (restored.from_version, restored.to_version) == (None, 3)
    assert [e.action for e in await label_history(engine, "support")] == [
        "move", "move", "rollback", "rollback", "delete", "rollback"]


async def test_delete_label_is_audited_and_unknown_labels_are_named(engine: AsyncEngine) -> None:
    await create_version(engine, "support", spec())
    await set_label(engine, "support", "staging", 1)
    deleted = await delete_label(engine, "support", "staging", actor="ana", reason="retired")
    assert (deleted.action, deleted.from_version, deleted.to_version) == ("delete", 1, None)
    with pytest.raises(PromptNotFound, match=r"no label 'staging'; its labels: none yet"):
        await delete_label(engine, "support", "staging")
    assert await labels_of(engine, "support") == {}
