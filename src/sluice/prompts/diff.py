"""What differs between two versions of a prompt: the template text as a unified diff, the rest key by key."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from sluice.json_diff import json_diff
from sluice.prompts.versions import PromptSpec, PromptVersion


@dataclass(frozen=True, slots=True)
class PromptDiff:
    a: int
    b: int
    template: tuple[str, ...]  # unified diff lines of the template text (a chat prompt's messages, one block each)
    changes: tuple[tuple[str, Any, Any], ...]  # (field path, a's value, b's value): kind, semver, variables, config

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "template_diff": list(self.template),
                "changes": [{"field": path, "a": old, "b": new} for path, old, new in self.changes]}


def diff(a: PromptVersion, b: PromptVersion) -> PromptDiff:
    text = difflib.unified_diff(_text(a.spec).splitlines(keepends=True), _text(b.spec).splitlines(keepends=True),
                                fromfile=a.ref(), tofile=b.ref())
    lines = tuple(line if line.endswith("\n") else line + "\n" for line in text)
    return PromptDiff(a.version, b.version, lines, tuple(json_diff(_fields(a.spec), _fields(b.spec))))


def _text(spec: PromptSpec) -> str:
    """The template as one text to diff: a chat prompt's messages each under a `### role` line."""
    if spec.kind == "text":
        return spec.template or ""
    blocks = [f"### {message.role}\n{message.content}" for message in spec.messages]
    return "".join(block if block.endswith("\n") else block + "\n" for block in blocks)


def _fields(spec: PromptSpec) -> dict[str, Any]:
    """Everything but the template, as nested dicts: variables by name, so `variables.tone.default` is one change."""
    variables = {variable.name: {"required": variable.required, "description": variable.description,
                                 "default": variable.default} for variable in spec.variables}
    return {"kind": spec.kind, "semver": spec.semver, "variables": variables, "config": spec.config}


__all__ = ["PromptDiff", "diff"]
