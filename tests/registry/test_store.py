"""The model registry: versions numbered by the store, aliases that move atomically with an audit trail, refs
and diffs; the repository against a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.registry import (
    Adapter,
    ModelVersion,
    RegistryError,
    RegistryNotFound,
    VersionSpec,
    alias_history,
    delete_alias,
    diff,
    get_version,
    list_models,
    list_versions,
    parse_ref,
    register,
    set_alias,
)
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

BASE = "meta-llama/Llama-3.1-8B-Instruct"
ADAPTER = Adapter(uri="s3://adapters/support-v2", sha256="ab" * 32, rank=16, alpha=32.0, base_model=BASE)


def spec(**overrides: object) -> VersionSpec:
    values: dict[str, object] = dict(base_model=BASE, params={"temperature": 0.2},
                                     targets=[{"backend": "vllm-a", "model": "support"}])
    values.update(overrides)
    return VersionSpec(**values)  # type: ignore[arg-type]


# --- versions ---------------------------------------------------------------------------------------------

async def test_register_numbers_versions_1_2_3_per_model(engine: AsyncEngine) -> None:
    first = await register(engine, "support", spec(), actor="alice")
    second = await register(engine, "support", spec(params={"temperature": 0.7}))
    other = await register(engine, "other.model_v2", spec())
    third = await register(engine, "support", spec(adapter=ADAPTER))
    assert [first.version, second.version, third.version, other.version] == [1, 2, 3, 1]
    assert first.model == "support" and first.created_by == "alice" and first.aliases == ()
    assert third.spec.adapter == ADAPTER


async def test_concurrent_registers_get_distinct_consecutive_versions(engine: AsyncEngine) -> None:
    await register(engine, "support", spec())
    registered = await asyncio.gather(*(register(engine, "support", spec(description=f"run {n}"))
                                        for n in range(10)))
    assert sorted(found.version for found in registered) == list(range(2, 12))
    assert [found.version for found in await list_versions(engine, "support")] == list(range(1, 12))


async def test_a_version_round_trips_every_field(engine: AsyncEngine) -> None:
    full = VersionSpec(
        base_model=BASE, base_revision="5206a32", adapter=ADAPTER, prompt="support-prompt@3",
        params={"temperature": 0.2, "max_tokens": 512, "stop": ["\n\n"], "nested": {"a": [1, 2]}},
        targets=[{"backend": "vllm-a", "model": "support"}, {"backend": "vllm-b", "model": "support-lora"}],
        lineage={"dataset_sha256": "cd" * 32, "parent_version": 1}, metadata={"ticket": "ML-42", "héllo": "👋"},
        description="LoRA on the March tickets")
    registered = await register(engine, "support", full, actor="ci")
    stored = await get_version(engine, "support", registered.version)
    assert stored == registered
    assert stored.spec == full
    assert stored.to_json() == {
        "model": "support", "version": 1, "base_model": BASE, "base_revision": "5206a32",
        "adapter": {"uri": ADAPTER.uri, "sha256": ADAPTER.sha256, "rank": 16, "alpha": 32.0, "base_model": BASE},
        "prompt": "support-prompt@3", "params": full.params, "targets": full.targets, "lineage": full.lineage,
        "metadata": full.metadata, "description": "LoRA on the March tickets", "created_at": stored.created_at,
        "created_by": "ci", "aliases": []}


async def test_get_version_by_number_alias_and_latest(engine: AsyncEngine) -> None:
    for temperature in (0.1, 0.2, 0.3):
        await register(engine, "support", spec(params={"temperature": temperature}))
    await set_alias(engine, "support", "production", 2)
    assert (await get_version(engine, "support")).version == 3
    assert (await get_version(engine, "support", "latest")).version == 3
    assert (await get_version(engine, "support", 1)).spec.params == {"temperature": 0.1}
    by_alias = await get_version(engine, "support", "production")
    assert (by_alias.version, by_alias.aliases) == (2, ("production",))


async def test_unknown_model_version_or_alias_names_what_exists(engine: AsyncEngine) -> None:
    await register(engine, "support", spec())
    await register(engine, "support", spec())
    await set_alias(engine, "support", "staging", 2)
    with pytest.raises(RegistryNotFound, match=r"unknown model 'nope'.*support"):
        await get_version(engine, "nope")
    with pytest.raises(RegistryNotFound, match=r"support has no version 7; its versions: 1, 2"):
        await get_version(engine, "support", 7)
    with pytest.raises(RegistryNotFound, match=r"support has no alias 'production'; its aliases: staging"):
        await get_version(engine, "support", "production")
    with pytest.raises(RegistryError, match=r"unknown model 'nope'"):
        await list_versions(engine, "nope")
    with pytest.raises(RegistryError, match=r"unknown model 'nope'"):
        await set_alias(engine, "nope", "production", 1)


async def test_list_versions_is_oldest_first_with_aliases(engine: AsyncEngine) -> None:
    for _ in range(3):
        await register(engine, "support", spec())
    await set_alias(engine, "support", "production", 1)
    await set_alias(engine, "support", "staging", 3)
    await set_alias(engine, "support", "canary", 3)
    found = await list_versions(engine, "support")
    assert [(version.version, version.aliases) for version in found] == [
        (1, ("production",)), (2, ()), (3, ("canary", "staging"))]


async def test_list_models_summarises_versions_and_aliases(engine: AsyncEngine) -> None:
    assert await list_models(engine) == []
    await register(engine, "support", spec())
    await register(engine, "support", spec())
    latest = await register(engine, "chat", spec())
    event = await set_alias(engine, "support", "production", 1)
    assert await list_models(engine) == [
        {"model": "chat", "versions": 1, "latest": 1, "aliases": {}, "updated_at": latest.created_at},
        {"model": "support", "versions": 2, "latest": 2, "aliases": {"production": 1}, "updated_at": event.at},
    ]


# --- aliases ----------------------------------------------------------------------------------------------

async def test_set_alias_moves_and_records_every_move(engine: AsyncEngine) -> None:
    for _ in range(3):
        await register(engine, "support", spec())
    created = await set_alias(engine, "support", "production", 1, actor="alice", reason="first release")
    moved = await set_alias(engine, "support", "production", 3, actor="bob", reason="eval passed")
    assert (created.from_version, created.to_version, created.actor, created.reason) == (
        None, 1, "alice", "first release")
    assert (moved.from_version, moved.to_version) == (1, 3)
    assert (await get_version(engine, "support", "production")).version == 3
    assert await alias_history(engine, "support", "production") == [created, moved]
    assert moved.to_json() == {"model": "support", "alias": "production", "from_version": 1, "to_version": 3,
                               "at": moved.at, "actor": "bob", "reason": "eval passed"}


async def test_set_alias_to_a_missing_version_changes_nothing(engine: AsyncEngine) -> None:
    await register(engine, "support", spec())
    await set_alias(engine, "support", "production", 1)
    with pytest.raises(RegistryNotFound, match=r"no version 9; its versions: 1"):
        await set_alias(engine, "support", "production", 9)
    assert (await get_version(engine, "support", "production")).version == 1
    assert len(await alias_history(engine, "support")) == 1


async def test_concurrent_alias_moves_chain_their_audit_events(engine: AsyncEngine) -> None:
    for _ in range(5):
        await register(engine, "support", spec())
    await asyncio.gather(*(set_alias(engine, "support", "production", version) for version in (1, 2, 3, 4, 5)))
    history = await alias_history(engine, "support", "production")
    assert len(history) == 5 and history[0].from_version is None
    assert all(later.from_version == earlier.to_version for earlier, later in itertools.pairwise(history))
    assert (await get_version(engine, "support", "production")).version == history[-1].to_version


async def test_delete_alias_records_it_and_unknown_aliases_are_named(engine: AsyncEngine) -> None:
    await register(engine, "support", spec())
    await set_alias(engine, "support", "staging", 1)
    deleted = await delete_alias(engine, "support", "staging", actor="alice", reason="retired")
    assert (deleted.from_version, deleted.to_version, deleted.actor, deleted.reason) == (1, None, "alice", "retired")
    with pytest.raises(RegistryNotFound, match=r"no alias 'staging'; its aliases: none"):
        await get_version(engine, "support", "staging")
    await set_alias(engine, "support", "production", 1)
    with pytest.raises(RegistryNotFound, match=r"no alias 'staging'; its aliases: production"):
        await delete_alias(engine, "support", "staging")
    assert [(event.alias, event.from_version, event.to_version) for event in await alias_history(engine, "support")
            ] == [("staging", None, 1), ("staging", 1, None), ("production", None, 1)]


async def test_alias_history_is_oldest_first_and_filters_by_alias(engine: AsyncEngine) -> None:
    await register(engine, "support", spec())
    await register(engine, "support", spec())
    await set_alias(engine, "support", "staging", 1)
    await set_alias(engine, "support", "production", 1)
    await set_alias(engine, "support", "staging", 2)
    everything = await alias_history(engine, "support")
    assert [(event.alias, event.to_version) for event in everything] == [
        ("staging", 1), ("production", 1), ("staging", 2)]
    assert [event.to_version for event in await alias_history(engine, "support", "staging")] == [1, 2]
    assert await alias_history(engine, "other") == []


@pytest.mark.parametrize("model", ["", "has space", "a@b", "-leading", ".hidden", "x" * 129, "ünï"])
async def test_bad_model_names_are_refused(engine: AsyncEngine, model: str) -> None:
    with pytest.raises(RegistryError, match="bad model name"):
        await register(engine, model, spec())


@pytest.mark.parametrize("alias", ["", "Production", "3", "-x", "has space", "a@b", "x" * 65, "latest"])
async def test_bad_alias_names_are_refused(engine: AsyncEngine, alias: str) -> None:
    await register(engine, "support", spec())
    with pytest.raises(RegistryError, match="bad alias"):
        await set_alias(engine, "support", alias, 1)


# --- refs and diffs (no database) -------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "expected"), [
    ("chat", ("chat", None)),
    ("chat@3", ("chat", 3)),
    ("chat@production", ("chat", "production")),
    ("chat@latest", ("chat", "latest")),
    ("org.support_v2-x@12", ("org.support_v2-x", 12)),
    ("chat@eval-2_b", ("chat", "eval-2_b")),
])
def test_parse_ref_reads_model_version_and_alias(ref: str, expected: tuple[str, int | str | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "@3", "chat@", "chat@0", "chat@-1", "chat@Prod", "chat@1@2", "bad name@1",
                                 "chat@3.5", "x" * 129])
def test_parse_ref_refuses_bad_references(ref: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(ref)


def _version(number: int, spec_: VersionSpec) -> ModelVersion:
    return ModelVersion(model="support", version=number, spec=spec_, created_at=1.0 * number, created_by=None)


def test_diff_lists_base_adapter_and_params_key_by_key() -> None:
    a = _version(1, spec(params={"temperature": 0.2, "top_p": 0.9}, adapter=ADAPTER))
    b = _version(2, spec(base_revision="main", params={"temperature": 0.7, "max_tokens": 256},
                         adapter=Adapter(uri=ADAPTER.uri, sha256=ADAPTER.sha256, rank=32, alpha=32.0,
                                         base_model=BASE)))
    assert diff(a, b) == [
        ("base_revision", None, "main"),
        ("adapter.rank", 16, 32),
        ("params.temperature", 0.2, 0.7),
        ("params.top_p", 0.9, None),
        ("params.max_tokens", None, 256),
    ]
    assert diff(a, a) == []


def test_diff_of_an_added_adapter_and_a_new_base_is_whole_values() -> None:
    a = _version(1, spec())
    b = _version(2, spec(base_model="Qwen/Qwen2.5-7B-Instruct", adapter=ADAPTER, targets=[]))
    assert diff(a, b) == [
        ("base_model", BASE, "Qwen/Qwen2.5-7B-Instruct"),
        ("adapter", None, {"uri": ADAPTER.uri, "sha256": ADAPTER.sha256, "rank": 16, "alpha": 32.0,
                           "base_model": BASE}),
        ("targets", [{"backend": "vllm-a", "model": "support"}], []),
    ]
