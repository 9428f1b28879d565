"""What differs between two JSON documents, key by key: the registries' diffs of two versions."""

from __future__ import annotations

from typing import Any

_MISSING = object()


def json_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key path, a's value, b's value) for each key whose values differ; nested dicts key by key
    (`params.temperature`); a key one side lacks reads None. Keys in a's order, then those only b has."""
    found: list[tuple[str, Any, Any]] = []
    for key in [*a, *(key for key in b if key not in a)]:
        left, right = a.get(key, _MISSING), b.get(key, _MISSING)
        path = f"{prefix}{key}"
        if isinstance(left, dict) and isinstance(right, dict):
            found.extend(json_diff(left, right, f"{path}."))
        elif left != right:
            found.append((path, None if left is _MISSING else left, None if right is _MISSING else right))
    return found


__all__ = ["json_diff"]
