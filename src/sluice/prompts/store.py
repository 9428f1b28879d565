"""Reads and writes of the prompt registry's tables (store/): versions numbered per prompt, labels and their moves.

Writes are safe under concurrency on both databases, as the model registry's are. A version's number is computed
inside its INSERT and the unique (name, version) index turns a lost race into a retry (`sluice.store.retrying`);
a semver is unique per prompt the same way. A label write starts with an UPDATE of its row: on PostgreSQL that
locks the row, on SQLite it takes the write lock, so the version it moves from (and, for a rollback, the move it
undoes) is read after every earlier move committed. Two people moving one label at once both succeed in turn: the
last one wins and the audit trail holds both moves, each from where the other left it.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sluice.names import LATEST, listing
from sluice.prompts.refs import PromptRef, check_label, check_name, parse_ref, selector
from sluice.prompts.templates import compiled
from sluice.prompts.versions import (
    LabelEvent,
    Message,
    PromptConflict,
    PromptNotFound,
    PromptSpec,
    PromptSummary,
    PromptVersion,
    Variable,
)
from sluice.store import PromptLabelEventRow, PromptLabelRow, PromptVersionRow, retrying

_VERSIONS = PromptVersionRow.__table__
_LABELS = PromptLabelRow.__table__
_EVENTS = PromptLabelEventRow.__table__


async def create_version(engine: AsyncEngine, name: str, spec: PromptSpec, *, expect_version: int | None = None,
                         ) -> PromptVersion:
    """Store `spec` as the prompt's next version (the first creates the prompt), after checking it whole.
    `expect_version`: only as that number (an import), else PromptConflict."""
    check_name(name)
    content_hash = spec.content_hash()
    compiled(spec, content_hash)  # checks everything; the first render finds it compiled
    next_version = (select(func.coalesce(func.max(_VERSIONS.c.version), 0) + 1)
                    .where(_VERSIONS.c.name == name).scalar_subquery())
    values = {"name": name, "version": next_version if expect_version is None else expect_version,
              "semver": spec.semver, "kind": spec.kind, "template": spec.template,
              "messages": [{"role": m.role, "content": m.content} for m in spec.messages] if spec.kind == "chat"
              else None, "variables": [variable.to_json() for variable in spec.variables], "config": spec.config,
              "content_hash": content_hash, "message": spec.message, "author": spec.author, "created_at": time.time()}

    async def insert_next(connection: AsyncConnection) -> PromptVersion:
        if spec.semver is not None:
            taken = (await connection.execute(select(_VERSIONS.c.version).where(
                _VERSIONS.c.name == name, _VERSIONS.c.semver == spec.semver))).scalar_one_or_none()
            if taken is not None:
                raise PromptConflict(f"{name} already has semver {spec.semver} (version {taken}); a semver names one "
                                     "version: give this one another", param="semver", code="semver_taken")
        if expect_version is not None:
            latest = await _latest(connection, name)
            if latest + 1 != expect_version:
                raise PromptConflict(f"{name}: expected to create version {expect_version}, but the next version is "
                                     f"{latest + 1}", param="version", code="version_moved")
        result = await connection.execute(insert(_VERSIONS).values(values).returning(*_VERSIONS.c))
        return _from_row(result.mappings().one(), (LATEST,))

    return await retrying(engine, insert_next)


async def get_version(engine: AsyncEngine, ref: PromptRef | str) -> PromptVersion:
    """The version `ref` names (`support`, `support@3`, `support@production`, `support@1.2.0`), with its labels;
    PromptNotFound naming what exists."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    async with engine.connect() as connection:
        version = await _resolve(connection, ref)
        row = (await connection.execute(select(_VERSIONS).where(
            _VERSIONS.c.name == ref.name, _VERSIONS.c.version == version))).mappings().one()
        labels = (await connection.execute(select(_LABELS.c.label).where(
            _LABELS.c.name == ref.name, _LABELS.c.version == version).order_by(_LABELS.c.label))).scalars().all()
        latest = await _latest(connection, ref.name)
    return _from_row(row, (*labels, *((LATEST,) if version == latest else ())))


async def list_versions(engine: AsyncEngine, name: str) -> list[PromptVersion]:
    """Every version of `name`, oldest first, each with its labels; PromptNotFound when there is no such prompt."""
    check_name(name)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(_VERSIONS).where(_VERSIONS.c.name == name)
                                         .order_by(_VERSIONS.c.version))).mappings().all()
        if not rows:
            raise await _unknown_prompt(connection, name)
        labels = await _labels(connection, name)
    by_version: dict[int, list[str]] = {}
    for label, version in labels.items():
        by_version.setdefault(version, []).append(label)
    by_version.setdefault(rows[-1]["version"], []).append(LATEST)
    return [_from_row(row, tuple(by_version.get(row["version"], ()))) for row in rows]


async def list_prompts(engine: AsyncEngine) -> list[PromptSummary]:
    """One summary per prompt, by name."""
    counts = (select(_VERSIONS.c.name, func.count().label("versions"), func.max(_VERSIONS.c.version).label("latest"))
              .group_by(_VERSIONS.c.name).subquery())
    latest = (select(counts.c.name, counts.c.versions, counts.c.latest, _VERSIONS.c.kind, _VERSIONS.c.semver,
                     _VERSIONS.c.created_at)
              .join(_VERSIONS, (_VERSIONS.c.name == counts.c.name) & (_VERSIONS.c.version == counts.c.latest))
              .order_by(counts.c.name))
    async with engine.connect() as connection:
        rows = (await connection.execute(latest)).mappings().all()
        labels = (await connection.execute(select(_LABELS).order_by(_LABELS.c.name, _LABELS.c.label))).mappings().all()
    by_name: dict[str, dict[str, int]] = {}
    updated: dict[str, float] = {}
    for label in labels:
        by_name.setdefault(label["name"], {})[label["label"]] = label["version"]
        updated[label["name"]] = max(updated.get(label["name"], 0.0), label["updated_at"])
    return [PromptSummary(name=row["name"], kind=row["kind"], versions=int(row["versions"]), latest=int(row["latest"]),
                          latest_semver=row["semver"], labels=by_name.get(row["name"], {}),
                          updated_at=max(float(row["created_at"]), updated.get(row["name"], 0.0))) for row in rows]


async def labels_of(engine: AsyncEngine, name: str) -> dict[str, int]:
    """Where each stored label of `name` points (no `latest`); empty when it has none."""
    check_name(name)
    async with engine.connect() as connection:
        return await _labels(connection, name)


async def set_label(engine: AsyncEngine, name: str, label: str, target: int | str, *, actor: str | None = None,
                    reason: str | None = None) -> LabelEvent:
    """Point `label` at `target` — a version number, or what follows an `@` (a semver, another label, `latest`),
    read in the same transaction — creating or moving it, and record the move."""
    check_name(name)
    check_label(label)
    ref = selector(name, target)

    async def move(connection: AsyncConnection) -> LabelEvent:
        previous = await _lock_label(connection, name, label)
        at = time.time()  # after the lock: moves are stamped in the order they commit
        version = await _resolve(connection, ref)
        await _point(connection, name, label, previous, version, at)
        return await _record(connection, LabelEvent(name, label, "move", previous, version, at, actor, reason))

    return await retrying(engine, move)


async def delete_label(engine: AsyncEngine, name: str, label: str, *, actor: str | None = None,
                       reason: str | None = None) -> LabelEvent:
    """Remove `label` and record it; PromptNotFound naming the labels there are when it does not exist."""
    check_name(name)
    check_label(label)

    async def remove(connection: AsyncConnection) -> LabelEvent:
        previous = await _lock_label(connection, name, label)
        at = time.time()
        if previous is None:
            await _resolve(connection, PromptRef(name, label=label))  # raises, naming the prompt's labels
        await connection.execute(delete(_LABELS).where(_LABELS.c.name == name, _LABELS.c.label == label))
        return await _record(connection, LabelEvent(name, label, "delete", previous, None, at, actor, reason))

    return await retrying(engine, remove)


async def rollback_label(engine: AsyncEngine, name: str, label: str = "production", *, actor: str | None = None,
                         reason: str | None = None) -> LabelEvent:
    """Point `label` back where it pointed before its last move (or delete), recorded as a `rollback`.
    Rolling back twice undoes the rollback."""
    check_name(name)
    check_label(label)

    async def back(connection: AsyncConnection) -> LabelEvent:
        previous = await _lock_label(connection, name, label)
        at = time.time()
        last = (await connection.execute(select(_EVENTS.c.from_version, _EVENTS.c.to_version).where(
            _EVENTS.c.name == name, _EVENTS.c.label == label).order_by(_EVENTS.c.id.desc()).limit(1))).first()
        if last is None:
            await _resolve(connection, PromptRef(name, label=label))  # an unknown prompt or label says so
            raise PromptConflict(f"{name}@{label} has never moved: nothing to roll back", param="label",
                                 code="nothing_to_roll_back")
        if last.from_version is None:
            raise PromptConflict(f"{name}@{label} was created at version {last.to_version} and has not moved since: "
                                 f"nothing to roll back to (move it: sluice prompts label {name} {label} VERSION)",
                                 param="label", code="nothing_to_roll_back")
        await _point(connection, name, label, previous, last.from_version, at)
        return await _record(connection, LabelEvent(name, label, "rollback", previous, last.from_version, at, actor,
                                                    reason))

    return await retrying(engine, back)


async def label_history(engine: AsyncEngine, name: str, label: str | None = None) -> list[LabelEvent]:
    """The moves of the prompt's labels (or of one), oldest first; empty when there were none."""
    check_name(name)
    statement = select(_EVENTS).where(_EVENTS.c.name == name).order_by(_EVENTS.c.id)
    if label is not None:
        statement = statement.where(_EVENTS.c.label == check_label(label))
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).mappings().all()
    return [LabelEvent(name=row["name"], label=row["label"], action=row["action"],
                       from_version=row["from_version"], to_version=row["to_version"], at=row["at"],
                       actor=row["actor"], reason=row["reason"]) for row in rows]


async def _resolve(connection: AsyncConnection, ref: PromptRef) -> int:
    """The version number `ref` names; PromptNotFound naming what exists when it names nothing."""
    name = ref.name
    if ref.label is not None:
        labels = await _labels(connection, name)
        if ref.label in labels:
            return labels[ref.label]
        await _latest_or_unknown(connection, name)  # an unknown prompt says so first
        known = listing(sorted(labels)) if labels else "none yet (set one: sluice prompts label NAME LABEL VERSION)"
        raise PromptNotFound(f"{name} has no label {ref.label!r}; its labels: {known}", param="label")
    if ref.semver is not None:
        semvers = dict((await connection.execute(select(_VERSIONS.c.semver, _VERSIONS.c.version).where(
            _VERSIONS.c.name == name, _VERSIONS.c.semver.is_not(None)).order_by(_VERSIONS.c.version))).all())
        if ref.semver in semvers:
            return int(semvers[ref.semver])
        await _latest_or_unknown(connection, name)
        known = listing(list(semvers)) if semvers else "none (give one with --semver when you create a version)"
        raise PromptNotFound(f"{name} has no version with semver {ref.semver}; its semvers: {known}", param="ref")
    latest = await _latest_or_unknown(connection, name)
    if ref.version is None:
        return latest
    exists = (await connection.execute(select(_VERSIONS.c.version).where(
        _VERSIONS.c.name == name, _VERSIONS.c.version == ref.version))).scalar_one_or_none()
    if exists is None:
        raise PromptNotFound(f"{name} has no version {ref.version}; its versions run from 1 to {latest} "
                             f"(e.g. {name}@{latest})", param="version")
    return ref.version


async def _latest(connection: AsyncConnection, name: str) -> int:
    """The newest version number of `name`, 0 when it has none."""
    found = (await connection.execute(select(func.max(_VERSIONS.c.version))
                                      .where(_VERSIONS.c.name == name))).scalar_one()
    return int(found or 0)


async def _latest_or_unknown(connection: AsyncConnection, name: str) -> int:
    latest = await _latest(connection, name)
    if latest == 0:
        raise await _unknown_prompt(connection, name)
    return latest


async def _unknown_prompt(connection: AsyncConnection, name: str) -> PromptNotFound:
    names = (await connection.execute(select(_VERSIONS.c.name).distinct().order_by(_VERSIONS.c.name))).scalars().all()
    known = listing(list(names)) if names else "none yet (create one: sluice prompts create NAME --template TEXT)"
    return PromptNotFound(f"unknown prompt {name!r}; prompts: {known}", param="name")


async def _labels(connection: AsyncConnection, name: str) -> dict[str, int]:
    return dict((await connection.execute(select(_LABELS.c.label, _LABELS.c.version).where(_LABELS.c.name == name)
                                          .order_by(_LABELS.c.label))).all())


async def _lock_label(connection: AsyncConnection, name: str, label: str) -> int | None:
    """Lock the label's row (and, on SQLite, the database) first; the version it points at now, None if unset."""
    # one statement: a separate read could see a row that another writer created after this UPDATE found none
    lock = (update(_LABELS).where(_LABELS.c.name == name, _LABELS.c.label == label)
            .values(updated_at=_LABELS.c.updated_at).returning(_LABELS.c.version))
    return (await connection.execute(lock)).scalar_one_or_none()


async def _point(connection: AsyncConnection, name: str, label: str, previous: int | None, version: int,
                 at: float) -> None:
    if previous is None:  # a second writer creating it at once loses on the primary key and retries
        await connection.execute(insert(_LABELS).values(name=name, label=label, version=version, updated_at=at))
    else:
        await connection.execute(update(_LABELS).where(_LABELS.c.name == name, _LABELS.c.label == label)
                                 .values(version=version, updated_at=at))


async def _record(connection: AsyncConnection, event: LabelEvent) -> LabelEvent:
    await connection.execute(insert(_EVENTS).values(event.to_json()))
    return event


def _from_row(row: RowMapping, labels: tuple[str, ...] = ()) -> PromptVersion:
    spec = PromptSpec(kind=row["kind"], template=row["template"],
                      messages=tuple(Message(**message) for message in row["messages"] or ()),
                      variables=tuple(Variable(**variable) for variable in row["variables"] or ()),
                      config=row["config"] or {}, semver=row["semver"], message=row["message"], author=row["author"])
    return PromptVersion(name=row["name"], version=row["version"], spec=spec, content_hash=row["content_hash"],
                         created_at=row["created_at"], labels=labels)


__all__ = ["create_version", "delete_label", "get_version", "label_history", "labels_of", "list_prompts",
           "list_versions", "rollback_label", "set_label"]
