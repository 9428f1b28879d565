"""Catalog errors and lookup by id with "did you mean" suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

_T = TypeVar("_T")


class CatalogError(ValueError):
    """A catalog file (built-in or user-supplied) is malformed; the message names the bad key."""


class UnknownIdError(CatalogError):
    """An id that is not in the catalog; `suggestions` holds the closest known ids."""

    def __init__(self, kind: str, requested: str, known: list[str]) -> None:
        self.kind = kind
        self.requested = requested
        needle = requested.lower()
        prefixed = sorted(item for item in known if item.startswith(needle) or needle.startswith(item))
        close = difflib.get_close_matches(needle, known, n=4, cutoff=0.5)
        self.suggestions = list(dict.fromkeys([*prefixed, *close]))[:4]
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{requested}'{hint} (known: {', '.join(sorted(known))})")


def find_by_id(items: Mapping[str, _T], requested: str, kind: str) -> _T:
    """`items[requested]` (ids are case-insensitive), or UnknownIdError listing close ids."""
    found = items.get(requested) or items.get(requested.lower())
    if found is None:
        raise UnknownIdError(kind, requested, list(items))
    return found
