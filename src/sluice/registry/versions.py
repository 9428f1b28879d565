"""A registered model's versions and alias moves as plain data; name rules, `model@ref` parsing, and diffs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sluice.json_diff import json_diff
from sluice.names import LABEL_MAX_CHARS as ALIAS_MAX_CHARS
from sluice.names import LATEST, is_label, is_name
from sluice.names import NAME_MAX_CHARS as MODEL_NAME_MAX_CHARS


class RegistryError(ValueError):
    """A bad name or reference, or an unknown model, version or alias; the message says what to type."""


class RegistryNotFound(RegistryError):
    """An unknown model, version or alias; the message names those that exist."""


@dataclass(frozen=True, slots=True)
class Adapter:
    """A LoRA adapter on top of the base model."""

    uri: str
    sha256: str | None = None
    rank: int | None = None
    alpha: float | None = None
    base_model: str | None = None  # what the adapter's own config says it was trained on


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """What a version is made of: `register` takes it, the store assigns the number."""

    base_model: str
    base_revision: str | None = None
    adapter: Adapter | None = None
    prompt: str | None = None  # a prompt reference, `support-prompt@3`
    params: dict[str, Any] = field(default_factory=dict)  # generation params: temperature, max_tokens ...
    targets: list[dict[str, str]] = field(default_factory=list)  # where it is served: [{backend, model}]
    lineage: dict[str, Any] = field(default_factory=dict)  # dataset_sha256, parent_version ...
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"base_model": self.base_model, "base_revision": self.base_revision,
                "adapter": None if self.adapter is None else asdict(self.adapter), "prompt": self.prompt,
                "params": self.params, "targets": self.targets, "lineage": self.lineage,
                "metadata": self.metadata, "description": self.description}


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: int
    spec: VersionSpec
    created_at: float  # unix seconds
    created_by: str | None
    aliases: tuple[str, ...] = ()  # the aliases pointing at it now

    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """Flat, for the admin API: the model and version, the spec's fields, who made it when, its aliases."""
        return {"model": self.model, "version": self.version, **self.spec.to_json(),
                "created_at": self.created_at, "created_by": self.created_by, "aliases": list(self.aliases)}


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: `from_version` None when it was created, `to_version` None when deleted."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: float  # unix seconds
    actor: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_model_name(model: str) -> str:
    if not is_name(model):
        raise RegistryError(
            f"bad model name {model!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit, "
            f"at most {MODEL_NAME_MAX_CHARS} characters (e.g. support-chat)")
    return model


def check_alias(alias: str) -> str:
    if not is_label(alias):
        raise RegistryError(
            f"bad alias {alias!r}: use lower-case letters, digits, '-' and '_', starting with a letter, at most "
            f"{ALIAS_MAX_CHARS} characters, not {LATEST!r} (e.g. production, staging, eval-2)")
    return alias


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """`chat@3` -> ("chat", 3); `chat@production` -> ("chat", "production"); `chat` -> ("chat", None)."""
    if not isinstance(ref, str):
        raise RegistryError(f"bad model reference {ref!r}: type MODEL, MODEL@VERSION or MODEL@ALIAS")
    model, at, tail = ref.partition("@")
    if not at:
        return check_model_name(model), None
    if not model or not tail or "@" in tail:
        raise RegistryError(f"bad model reference {ref!r}: type MODEL, MODEL@VERSION or MODEL@ALIAS "
                            "(e.g. chat, chat@3, chat@production)")
    check_model_name(model)
    if tail.isascii() and tail.isdigit():
        version = int(tail)
        if version < 1:
            raise RegistryError(f"bad version in {ref!r}: versions start at 1 (e.g. {model}@1)")
        return model, version
    if tail == LATEST:
        return model, LATEST
    return model, check_alias(tail)


def diff(a: ModelVersion, b: ModelVersion) -> list[tuple[str, Any, Any]]:
    """(field path, a's value, b's value) for each field of the two specs that differs; dicts key by key
    (`params.temperature`, `adapter.rank`); a key one side lacks reads None."""
    return json_diff(a.spec.to_json(), b.spec.to_json())


__all__ = [
    "ALIAS_MAX_CHARS",
    "LATEST",
    "MODEL_NAME_MAX_CHARS",
    "Adapter",
    "AliasEvent",
    "ModelVersion",
    "RegistryError",
    "RegistryNotFound",
    "VersionSpec",
    "check_alias",
    "check_model_name",
    "diff",
    "parse_ref",
]
