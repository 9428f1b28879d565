"""Prompts in bulk: export every version and label of some prompts as bundles, and import bundles — create the
versions the store lacks, then move labels to match, audited as `import from DIR`.

A version is matched by its number and compared whole (content hash, semver, commit message, author): equal is
nothing to do, different is an error naming the file, since versions never change. A new version must be the
prompt's next number, so re-importing an export changes nothing and a file written in git after another version
was created on the gateway is refused rather than numbered differently. Every file is checked before anything is
written; labels the bundle does not name are left where they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.prompts.document import PromptBundle
from sluice.prompts.store import create_version, labels_of, list_prompts, list_versions, set_label
from sluice.prompts.templates import compiled
from sluice.prompts.versions import LabelEvent, PromptConflict, PromptError, PromptNotFound, PromptSpec, PromptVersion


@dataclass(frozen=True, slots=True)
class ImportReport:
    created: tuple[str, ...]  # `support@3` ...
    unchanged: int  # versions the store held already
    moved: tuple[LabelEvent, ...]
    names: tuple[str, ...]  # the prompts that changed: their request-time caches must be dropped

    def to_json(self) -> dict[str, Any]:
        return {"created": list(self.created), "unchanged": self.unchanged,
                "moved": [event.to_json() for event in self.moved], "names": list(self.names)}


@dataclass(frozen=True, slots=True)
class _Plan:
    bundle: PromptBundle
    create: tuple[tuple[int, PromptSpec], ...]
    unchanged: int
    labels: dict[str, int]  # the labels to move, to where


async def export_prompts(engine: AsyncEngine, names: Sequence[str] = ()) -> list[PromptBundle]:
    """A bundle per prompt (all of them when `names` is empty), by name; PromptNotFound for an unknown name."""
    wanted = sorted(set(names)) if names else [summary.name for summary in await list_prompts(engine)]
    bundles = []
    for name in wanted:
        versions = await list_versions(engine, name)
        bundles.append(PromptBundle(name, tuple((version.version, version.spec) for version in versions),
                                    await labels_of(engine, name)))
    return bundles


async def import_prompts(engine: AsyncEngine, bundles: Sequence[PromptBundle], *, source: str,
                         actor: str | None = None) -> ImportReport:
    """Make the store hold every bundle's versions and labels; PromptError naming the file at fault, before any
    write, when a bundle cannot be imported."""
    names = [bundle.name for bundle in bundles]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PromptError(f"{', '.join(twice)}: given more than once", param="prompts", code="invalid_import")
    plans = [await _plan(engine, bundle) for bundle in bundles]
    created: list[str] = []
    moved: list[LabelEvent] = []
    for plan in plans:
        name = plan.bundle.name
        for number, spec in plan.create:
            created.append((await create_version(engine, name, spec, expect_version=number)).ref())
        for label, version in plan.labels.items():
            moved.append(await set_label(engine, name, label, version, actor=actor, reason=f"import from {source}"))
    changed = tuple(plan.bundle.name for plan in plans if plan.create or plan.labels)
    return ImportReport(tuple(created), sum(plan.unchanged for plan in plans), tuple(moved), changed)


async def _plan(engine: AsyncEngine, bundle: PromptBundle) -> _Plan:
    name = bundle.name
    try:
        stored = {version.version: version for version in await list_versions(engine, name)}
    except PromptNotFound:
        stored = {}
    numbers = [number for number, _ in bundle.versions]
    if len(set(numbers)) != len(numbers):
        raise PromptError(f"{name}: a version number is given more than once", param="versions",
                          code="invalid_import")
    next_number = max(stored, default=0) + 1
    create: list[tuple[int, PromptSpec]] = []
    unchanged = 0
    for number, spec in sorted(bundle.versions, key=lambda pair: pair[0]):
        where = f"{name}/v{number}.yaml"
        held = stored.get(number)
        if held is not None:
            differences = _differences(held, spec)
            if differences:
                raise PromptConflict(
                    f"{where} differs from {held.ref()} in the store ({', '.join(differences)}): versions never "
                    f"change; put the change in a new file, {name}/v{max(stored) + 1}.yaml", param=where,
                    code="version_differs")
            unchanged += 1
            continue
        if number != next_number:
            raise PromptConflict(f"{where}: the next version of {name} is {next_number}; number the files 1, 2, 3 ... "
                                 f"with no gaps (name it v{next_number}.yaml)", param=where, code="version_gap")
        try:
            compiled(spec)
        except PromptError as error:
            error.args = (f"{where}: {error}",)
            raise
        create.append((number, spec))
        next_number += 1
    known = set(stored) | {number for number, _ in create}
    current = await labels_of(engine, name) if stored else {}
    labels: dict[str, int] = {}
    for label, version in bundle.labels.items():
        if version not in known:
            raise PromptNotFound(f"{name}/labels.yaml: {label}: {name} has no version {version}", param=label,
                                 code="not_found")
        if current.get(label) != version:
            labels[label] = version
    return _Plan(bundle, tuple(create), unchanged, labels)


def _differences(held: PromptVersion, spec: PromptSpec) -> list[str]:
    """The fields in which a stored version and a file differ: the content by its hash, the commit fields as
    they are."""
    differences = [key for key in ("semver", "message", "author") if getattr(held.spec, key) != getattr(spec, key)]
    if held.content_hash != spec.content_hash():
        ours, theirs = held.spec.content_json(), spec.content_json()
        differences += [key for key in ours if ours[key] != theirs[key]] or ["content"]
    return differences


__all__ = ["ImportReport", "export_prompts", "import_prompts"]
