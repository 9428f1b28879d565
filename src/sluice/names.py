"""The names registries give: a registered model's or prompt's name, and the labels (aliases) that point at one of
its versions. One rule each, which the model registry and the prompt registry both apply with their own words."""

from __future__ import annotations

import re
from typing import Any

NAME_MAX_CHARS = 128
LABEL_MAX_CHARS = 64
LATEST = "latest"  # `name@latest`: the newest version, never a stored label

LISTED_MAX = 20  # names an error message lists at most

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL = re.compile(r"[a-z][a-z0-9_-]*")  # a leading letter: `name@3` is always version 3, never a label


def is_name(value: object) -> bool:
    """Letters, digits, '-', '_' and '.', starting with a letter or digit, at most NAME_MAX_CHARS."""
    return isinstance(value, str) and len(value) <= NAME_MAX_CHARS and _NAME.fullmatch(value) is not None


def is_label(value: object) -> bool:
    """Lower-case letters, digits, '-' and '_', starting with a letter, at most LABEL_MAX_CHARS, not `latest`."""
    return (isinstance(value, str) and len(value) <= LABEL_MAX_CHARS and _LABEL.fullmatch(value) is not None
            and value != LATEST)


def listing(names: list[Any]) -> str:
    """Names for an error message that says what exists: `a, b, c`, cut after LISTED_MAX."""
    shown = ", ".join(str(name) for name in names[:LISTED_MAX])
    return shown + (f" ... ({len(names)} in all)" if len(names) > LISTED_MAX else "")


__all__ = ["LABEL_MAX_CHARS", "LATEST", "LISTED_MAX", "NAME_MAX_CHARS", "is_label", "is_name", "listing"]
