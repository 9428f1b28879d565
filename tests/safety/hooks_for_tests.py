"""Custom guard hooks that the tests name in their configs (`tests.safety.hooks_for_tests:<name>`)."""

from __future__ import annotations

import asyncio
from typing import Any

calls: list[dict[str, Any]] = []  # the contexts hooks were given


def banana_score(text: str, direction: str, context: dict[str, Any]) -> float:
    """A plain (sync) hook: a score, 0.9 when the text mentions bananas."""
    calls.append({"direction": direction, **context})
    return 0.9 if "banana" in text.lower() else 0.1


async def cherry_dict(text: str, direction: str, context: dict[str, Any]) -> dict[str, Any]:
    """An async hook returning a dict with its own category and rule."""
    return {"flagged": "cherry" in text.lower(), "category": "fruit", "rule": "cherry-rule"}


async def never_answers(text: str, direction: str, context: dict[str, Any]) -> bool:
    await asyncio.Event().wait()  # a guard backend that hangs: only the deadline ends it
    return False


def raises(text: str, direction: str, context: dict[str, Any]) -> bool:
    raise RuntimeError("the hook's backend is down")


def says_yes(text: str, direction: str, context: dict[str, Any]) -> str:
    return "yes"  # not a verdict


NOT_CALLABLE = 3


def injection_score(text: str, direction: str, context: dict[str, Any]) -> float:
    """A stand-in injection classifier: confident about one phrasing the heuristics do not know."""
    return 0.95 if "grandma used to read me" in text.lower() else 0.05
