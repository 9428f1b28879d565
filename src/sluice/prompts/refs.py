"""Prompt names, labels and semantic versions, and `name@ref` references: `support`, `support@3`,
`support@production`, `support@1.2.0`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluice.names import LABEL_MAX_CHARS, LATEST, NAME_MAX_CHARS, is_label, is_name
from sluice.prompts.versions import PromptError

SEMVER_MAX_CHARS = 64
# MAJOR.MINOR.PATCH with an optional pre-release (semver.org §9); no build metadata: `+` is not a ref character
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
_FORMS = "NAME, NAME@VERSION, NAME@LABEL or NAME@SEMVER (e.g. support, support@3, support@production, support@1.2.0)"


def check_name(name: object) -> str:
    if not is_name(name):
        raise PromptError(f"bad prompt name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter "
                          f"or digit, at most {NAME_MAX_CHARS} characters (e.g. support-reply)", param="name",
                          code="invalid_name")
    return name  # type: ignore[return-value]  # is_name checked it is a str


def check_label(label: object) -> str:
    if label == LATEST:
        raise PromptError(f"{LATEST!r} is not a label you can set: it always means the newest version",
                          param="label", code="invalid_label")
    if not is_label(label):
        raise PromptError(f"bad label {label!r}: use lower-case letters, digits, '-' and '_', starting with a letter, "
                          f"at most {LABEL_MAX_CHARS} characters (e.g. production, staging, tenant-a)",
                          param="label", code="invalid_label")
    return label  # type: ignore[return-value]  # is_label checked it is a str


def check_semver(semver: object) -> str:
    if not isinstance(semver, str) or len(semver) > SEMVER_MAX_CHARS or not _SEMVER.fullmatch(semver):
        raise PromptError(f"bad semver {semver!r}: use MAJOR.MINOR.PATCH, optionally with a pre-release "
                          "(e.g. 1.2.0, 2.0.0-rc.1)", param="semver", code="invalid_semver")
    return semver


@dataclass(frozen=True, slots=True)
class PromptRef:
    """A prompt and which of its versions: at most one of `version`, `label`, `semver`; none means the latest."""

    name: str
    version: int | None = None
    label: str | None = None
    semver: str | None = None

    def __str__(self) -> str:
        tail = self.version if self.version is not None else self.label or self.semver
        return self.name if tail is None else f"{self.name}@{tail}"


def parse_ref(ref: str) -> PromptRef:
    """`support` -> the latest; `support@3`; `support@latest`; `support@production`; `support@1.2.0`."""
    if not isinstance(ref, str):
        raise PromptError(f"bad prompt reference {ref!r}: type {_FORMS}", param="ref", code="invalid_ref")
    name, at, tail = ref.partition("@")
    if at and (not name or not tail or "@" in tail):
        raise PromptError(f"bad prompt reference {ref!r}: type {_FORMS}", param="ref", code="invalid_ref")
    return selector(name, tail if at else None)


def selector(name: str, tail: str | int | None) -> PromptRef:
    """The reference to `name` that `tail` (what follows the `@`; a number, a label, a semver, `latest` or None)
    makes."""
    check_name(name)
    if tail is None or tail == LATEST:
        return PromptRef(name)
    if isinstance(tail, int) and not isinstance(tail, bool):
        number = tail
    elif isinstance(tail, str) and tail.isascii() and tail.isdigit():
        number = int(tail)
    elif isinstance(tail, str) and tail[:1].isdigit():
        return PromptRef(name, semver=check_semver(tail))
    else:
        return PromptRef(name, label=check_label(tail))
    if number < 1:
        raise PromptError(f"bad version {tail!r} of {name}: versions start at 1 (e.g. {name}@1)", param="ref",
                          code="invalid_ref")
    return PromptRef(name, version=number)


__all__ = ["SEMVER_MAX_CHARS", "PromptRef", "check_label", "check_name", "check_semver", "parse_ref",
           "selector"]
