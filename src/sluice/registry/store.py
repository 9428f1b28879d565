"""Reads and writes of the registry's tables (store/): versions numbered per model, aliases and their moves.

Writes are safe under concurrency on both databases. A version's number is computed inside its INSERT and the
unique (model, version) index turns a lost race into a retry. An alias write starts with an UPDATE of its row:
on PostgreSQL that locks the row, on SQLite it takes the write lock (pysqlite opens the transaction at the first
write), so the version it moves from is read after every earlier move committed.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sluice.names import listing
from sluice.registry.versions import (
    LATEST,
    Adapter,
    AliasEvent,
    ModelVersion,
    RegistryError,
    RegistryNotFound,
    VersionSpec,
    check_alias,
    check_model_name,
)
from sluice.store import RegistryAliasEventRow, RegistryAliasRow, RegistryVersionRow, retrying

_VERSIONS = RegistryVersionRow.__table__
_ALIASES = RegistryAliasRow.__table__
_EVENTS = RegistryAliasEventRow.__table__

def _spec_row(spec: VersionSpec) -> dict[str, Any]:
    adapter = spec.adapter
    return {
        "base_model": spec.base_model, "base_revision": spec.base_revision,
        "adapter_uri": adapter.uri if adapter else None, "adapter_sha256": adapter.sha256 if adapter else None,
        "adapter_rank": adapter.rank if adapter else None, "adapter_alpha": adapter.alpha if adapter else None,
        "adapter_base_model": adapter.base_model if adapter else None,
        "prompt": spec.prompt, "params": dict(spec.params), "targets": [dict(target) for target in spec.targets],
        "lineage": dict(spec.lineage), "metadata_json": dict(spec.metadata), "description": spec.description,
    }


def _from_row(row: RowMapping, aliases: tuple[str, ...] = ()) -> ModelVersion:
    adapter = None if row["adapter_uri"] is None else Adapter(
        uri=row["adapter_uri"], sha256=row["adapter_sha256"], rank=row["adapter_rank"],
        alpha=row["adapter_alpha"], base_model=row["adapter_base_model"])
    spec = VersionSpec(
        base_model=row["base_model"], base_revision=row["base_revision"], adapter=adapter, prompt=row["prompt"],
        params=row["params"] or {}, targets=row["targets"] or [], lineage=row["lineage"] or {},
        metadata=row["metadata_json"] or {}, description=row["description"])
    return ModelVersion(model=row["model"], version=row["version"], spec=spec, created_at=row["created_at"],
                        created_by=row["created_by"], aliases=aliases)


def _event(row: RowMapping) -> AliasEvent:
    return AliasEvent(model=row["model"], alias=row["alias"], from_version=row["from_version"],
                      to_version=row["to_version"], at=row["at"], actor=row["actor"], reason=row["reason"])


async def register(engine: AsyncEngine, model: str, spec: VersionSpec, *, actor: str | None = None,
                   ) -> ModelVersion:
    """Store `spec` as the model's next version (the first registers the model)."""
    check_model_name(model)
    if not isinstance(spec.base_model, str) or not spec.base_model:
        raise RegistryError(f"{model}: a version needs a base model (e.g. meta-llama/Llama-3.1-8B-Instruct)")
    next_version = (select(func.coalesce(func.max(_VERSIONS.c.version), 0) + 1)
                    .where(_VERSIONS.c.model == model).scalar_subquery())
    values = {"model": model, "version": next_version, **_spec_row(spec), "created_at": time.time(),
              "created_by": actor}

    async def insert_next(connection: AsyncConnection) -> ModelVersion:
        result = await connection.execute(insert(_VERSIONS).values(values).returning(*_VERSIONS.c))
        return _from_row(result.mappings().one())

    return await retrying(engine, insert_next)


async def get_version(engine: AsyncEngine, model: str, ref: int | str | None = None) -> ModelVersion:
    """The latest version (`ref` None or "latest"), version `ref` (an int), or the one alias `ref` points at."""
    check_model_name(model)
    async with engine.connect() as connection:
        version = await _resolve(connection, model, ref)
        row = (await connection.execute(select(_VERSIONS).where(
            _VERSIONS.c.model == model, _VERSIONS.c.version == version))).mappings().one()
        aliases = (await connection.execute(select(_ALIASES.c.alias).where(
            _ALIASES.c.model == model, _ALIASES.c.version == version).order_by(_ALIASES.c.alias))).scalars().all()
    return _from_row(row, tuple(aliases))


async def _resolve(connection: AsyncConnection, model: str, ref: int | str | None) -> int:
    """The version number `ref` names; RegistryError naming what exists when it names nothing."""
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        ref = int(ref)
    if ref is None or ref == LATEST:
        latest = (await connection.execute(select(func.max(_VERSIONS.c.version))
                                           .where(_VERSIONS.c.model == model))).scalar_one()
        if latest is None:
            raise await _unknown_model(connection, model)
        return int(latest)
    if isinstance(ref, int) and not isinstance(ref, bool):
        versions = (await connection.execute(select(_VERSIONS.c.version).where(_VERSIONS.c.model == model)
                                             .order_by(_VERSIONS.c.version))).scalars().all()
        if not versions:
            raise await _unknown_model(connection, model)
        if ref not in versions:
            raise RegistryNotFound(f"{model} has no version {ref}; its versions: {listing(list(versions))} "
                                f"(e.g. {model}@{versions[-1]})")
        return ref
    if not isinstance(ref, str):
        raise RegistryError(f"bad reference {ref!r} to {model}: give a version number, an alias or None")
    aliases = dict((await connection.execute(select(_ALIASES.c.alias, _ALIASES.c.version)
                                             .where(_ALIASES.c.model == model)
                                             .order_by(_ALIASES.c.alias))).all())
    if ref in aliases:
        return int(aliases[ref])
    await _versions_of(connection, model)  # an unknown model says so first
    known = listing(list(aliases)) if aliases else "none (set one with set_alias)"
    raise RegistryNotFound(f"{model} has no alias {ref!r}; its aliases: {known}")


async def _versions_of(connection: AsyncConnection, model: str) -> list[RowMapping]:
    rows = (await connection.execute(select(_VERSIONS).where(_VERSIONS.c.model == model)
                                     .order_by(_VERSIONS.c.version))).mappings().all()
    if not rows:
        raise await _unknown_model(connection, model)
    return list(rows)


async def _unknown_model(connection: AsyncConnection, model: str) -> RegistryNotFound:
    models = (await connection.execute(select(_VERSIONS.c.model).distinct()
                                       .order_by(_VERSIONS.c.model))).scalars().all()
    known = listing(list(models)) if models else "none yet (register one first)"
    return RegistryNotFound(f"unknown model {model!r}; registered models: {known}")


async def list_versions(engine: AsyncEngine, model: str) -> list[ModelVersion]:
    """Every version of `model`, oldest first, each with the aliases pointing at it; RegistryError if none."""
    check_model_name(model)
    async with engine.connect() as connection:
        rows = await _versions_of(connection, model)
        aliases = (await connection.execute(select(_ALIASES.c.alias, _ALIASES.c.version)
                                            .where(_ALIASES.c.model == model)
                                            .order_by(_ALIASES.c.alias))).all()
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases:
        by_version.setdefault(version, []).append(alias)
    return [_from_row(row, tuple(by_version.get(row["version"], ()))) for row in rows]


async def list_models(engine: AsyncEngine) -> list[dict[str, Any]]:
    """One summary per model, by name: how many versions, the latest, its aliases, when it last changed."""
    versions = (select(_VERSIONS.c.model, func.count().label("versions"), func.max(_VERSIONS.c.version)
                       .label("latest"), func.max(_VERSIONS.c.created_at).label("updated_at"))
                .group_by(_VERSIONS.c.model).order_by(_VERSIONS.c.model))
    async with engine.connect() as connection:
        summaries = (await connection.execute(versions)).mappings().all()
        aliases = (await connection.execute(select(_ALIASES).order_by(_ALIASES.c.model, _ALIASES.c.alias))
                   ).mappings().all()
    found = {row["model"]: {"model": row["model"], "versions": int(row["versions"]), "latest": int(row["latest"]),
                            "aliases": {}, "updated_at": float(row["updated_at"])} for row in summaries}
    for row in aliases:
        summary = found.get(row["model"])
        if summary is not None:
            summary["aliases"][row["alias"]] = row["version"]
            summary["updated_at"] = max(summary["updated_at"], row["updated_at"])
    return list(found.values())


async def set_alias(engine: AsyncEngine, model: str, alias: str, version: int, *, actor: str | None = None,
                    reason: str | None = None) -> AliasEvent:
    """Point `alias` at `version` (creating the alias or moving it) and record the move, in one transaction."""
    check_model_name(model)
    check_alias(alias)
    if not isinstance(version, int) or isinstance(version, bool):
        raise RegistryError(f"bad version {version!r} for {model}@{alias}: give a version number (e.g. 3)")

    async def move(connection: AsyncConnection) -> AliasEvent:
        previous = await _lock_alias(connection, model, alias)
        at = time.time()  # after the lock: moves are stamped in the order they commit
        await _resolve(connection, model, version)  # the version must exist
        if previous is None:
            await connection.execute(insert(_ALIASES).values(model=model, alias=alias, version=version,
                                                             updated_at=at))
        else:
            await connection.execute(update(_ALIASES).where(_ALIASES.c.model == model, _ALIASES.c.alias == alias)
                                     .values(version=version, updated_at=at))
        return await _record(connection, AliasEvent(model, alias, previous, version, at, actor, reason))

    return await retrying(engine, move)


async def delete_alias(engine: AsyncEngine, model: str, alias: str, *, actor: str | None = None,
                       reason: str | None = None) -> AliasEvent:
    """Remove `alias` and record it; RegistryError naming the aliases there are when it does not exist."""
    check_model_name(model)
    check_alias(alias)

    async def remove(connection: AsyncConnection) -> AliasEvent:
        previous = await _lock_alias(connection, model, alias)
        at = time.time()  # after the lock: moves are stamped in the order they commit
        if previous is None:
            await _resolve(connection, model, alias)  # raises, naming the model's aliases
        await connection.execute(delete(_ALIASES).where(_ALIASES.c.model == model, _ALIASES.c.alias == alias))
        return await _record(connection, AliasEvent(model, alias, previous, None, at, actor, reason))

    return await retrying(engine, remove)


async def _lock_alias(connection: AsyncConnection, model: str, alias: str) -> int | None:
    """Lock the alias's row (and, on SQLite, the database) first; the version it points at now, None if unset."""
    # one statement: a separate read could see a row that another writer created after this UPDATE found none
    lock = (update(_ALIASES).where(_ALIASES.c.model == model, _ALIASES.c.alias == alias)
            .values(updated_at=_ALIASES.c.updated_at).returning(_ALIASES.c.version))
    return (await connection.execute(lock)).scalar_one_or_none()


async def _record(connection: AsyncConnection, event: AliasEvent) -> AliasEvent:
    await connection.execute(insert(_EVENTS).values(event.to_json()))
    return event


async def alias_history(engine: AsyncEngine, model: str, alias: str | None = None) -> list[AliasEvent]:
    """The moves of the model's aliases (or of one), oldest first; empty when there were none."""
    check_model_name(model)
    statement = select(_EVENTS).where(_EVENTS.c.model == model).order_by(_EVENTS.c.at, _EVENTS.c.id)
    if alias is not None:
        statement = statement.where(_EVENTS.c.alias == check_alias(alias))
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).mappings().all()
    return [_event(row) for row in rows]


__all__ = ["alias_history", "delete_alias", "get_version", "list_models", "list_versions", "register",
           "set_alias"]
