"""Called guards that run your code: a custom guard (`hook`) and the injection layer's optional classifier.

A hook is `module.path:attribute`, imported when the gateway starts (a bad path is a startup error naming the
guard). It is called as `hook(text, direction, context)` — `context` a dict with request_id, model, endpoint,
key_id and team — and may be a plain function (run in a worker thread, so a slow one never stalls the event
loop) or `async`. It returns:

- None or False: nothing found; True: found;
- a number: a score in [0, 1], found at the guard's `threshold`;
- a dict: `score` (number) or `flagged` (bool), optionally `category` and `rule` (strings).

Anything else, or an exception, is the guard failing: `on_error` decides (docs/safety.md#failures).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import numbers
import re
from collections.abc import Callable
from typing import Any

from sluice.config import CustomGuardConfig
from sluice.safety.guards import Direction, GuardBase, GuardContext, GuardFailed, Verdict


def load_hook(path: str, where: str) -> Callable[..., Any]:
    """`module.path:attribute`, imported now; a ValueError naming `where` if it is not there or not callable."""
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # its own import errors too: the operator needs to see them at start
        raise ValueError(f"{where}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"{where}: module {module_name!r} has no attribute {attribute!r}")
    if not callable(target):
        raise ValueError(f"{where}: {path} is not callable")
    return target  # type: ignore[no-any-return]


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Await an async hook; run a plain one in a worker thread."""
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(getattr(hook, "__call__", None)):  # noqa: B004
        return await hook(*args)
    result = await asyncio.to_thread(hook, *args)
    return await result if inspect.isawaitable(result) else result


def interpret(result: Any, threshold: float) -> tuple[bool, float | None, str | None, str | None]:
    """(found, score, category, rule) from what a hook returned; GuardFailed for anything else."""
    if result is None or result is False:
        return False, None, None, None
    if result is True:
        return True, None, None, None
    if isinstance(result, numbers.Real):  # numpy's floats too
        return (*_scored(float(result), threshold), None, None)
    if isinstance(result, dict):
        category, rule = result.get("category"), result.get("rule")
        if not (category is None or (isinstance(category, str) and _CATEGORY.match(category))):
            raise GuardFailed("the hook's `category` must be a name of lower-case letters, digits, - and _")
        if not (rule is None or isinstance(rule, str)):
            raise GuardFailed("the hook's `rule` must be a string")
        rule = rule[:200] if rule is not None else None
        if isinstance(result.get("flagged"), bool) and "score" not in result:
            return result["flagged"], None, category, rule
        score = result.get("score")
        if isinstance(score, numbers.Real) and not isinstance(score, bool):
            return (*_scored(float(score), threshold), category, rule)
        raise GuardFailed("the hook's dict needs a numeric `score` or a boolean `flagged`")
    raise GuardFailed(f"the hook returned a {type(result).__name__}; expected None, a bool, a score or a dict")


_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # a metric label: as config's categories


def _scored(score: float, threshold: float) -> tuple[bool, float]:
    if not 0.0 <= score <= 1.0:
        raise GuardFailed(f"the hook's score {score} is outside [0, 1]")
    return score >= threshold, score


class CustomGuard(GuardBase):
    layer = "custom"

    def __init__(self, name: str, config: CustomGuardConfig) -> None:
        super().__init__(name, config)
        self.hook = load_hook(config.hook, f"safety.guards.{name}.hook")
        self.threshold = config.threshold
        self._called(config)

    async def judge(self, text: str, direction: Direction, context: GuardContext) -> Verdict | None:
        found, score, category, rule = interpret(await call_hook(self.hook, text, direction, context.as_dict()),
                                                 self.threshold)
        if not found:
            return None
        return self._verdict(direction, rule or (f"score={score:.2f}" if score is not None else "hook"),
                             category=category, score=score)


__all__ = ["CustomGuard", "call_hook", "interpret", "load_hook"]
