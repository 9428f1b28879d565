"""Running guards on a text: local guards in order until one blocks, called guards (models, hooks) at once
within their deadlines; every verdict and failure timed, counted and kept in the request's annotations
(`guard.input` / `guard.output`). The stage (stage.py) decides when and on what text; this runs them."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sluice.safety.guards import CalledGuard, Direction, Guard, GuardContext, GuardFailed, Verdict
from sluice.safety.metrics import SafetyMetrics
from sluice.safety.outcomes import Failure, Outcome

if TYPE_CHECKING:
    from sluice.gateway.context import RequestContext

log = logging.getLogger("sluice.safety")


class GuardRunner:
    """Runs guards on a text for the stage, recording what they found in its metrics and the request."""

    def __init__(self, metrics: SafetyMetrics) -> None:
        self.metrics = metrics

    def run(self, ctx: RequestContext, guards: list[Guard], text: str, direction: Direction,
             new_chars: int | None = None, masks: list[Guard] | None = None,
             fired: set[str] | None = None) -> Verdict | None:
        """Local guards in order until one blocks; every verdict recorded. Returns the blocking one, if any.

        `new_chars`: a streamed answer's window whose last `new_chars` characters are new. A guard that knows how
        far a match can reach back (`reach`) reads only that much before them: the rest was checked already."""
        metrics = self.metrics
        found: list[Any] = []
        blocking = None
        for guard in guards:
            if fired is not None and guard.name in fired:
                continue  # a stream: a guard that flagged (or monitors) says so once, not at every later chunk
            started = perf_counter()
            reach = getattr(guard, "reach", None)
            checked = text if new_chars is None or reach is None else _tail(text, new_chars + reach)
            verdict = guard.check(checked, direction)
            spent = perf_counter() - started
            metrics.timed(guard.name, direction, spent)
            if verdict is None:
                continue
            verdict = replace(verdict, latency_s=spent)
            metrics.found(verdict)
            found.append(verdict.to_json())
            if fired is not None:
                fired.add(guard.name)
            if masks is not None and verdict.action == "mask" and verdict.mode == "enforce":
                masks.append(guard)
            if verdict.blocks:
                blocking = verdict
                break
        if found:
            _annotate(ctx, direction, found)
        if blocking is not None:
            metrics.blocked.labels(ctx.model, direction).inc()
        return blocking

    async def judge(self, ctx: RequestContext, guards: list[CalledGuard], text: str, direction: Direction,
                     fired: set[str] | None = None) -> Outcome:
        """Called guards, all at once, each within its deadline; the first to block cancels the rest. Every
        verdict and failure is recorded."""
        guards = [guard for guard in guards if fired is None or guard.name not in fired]
        if not guards:
            return None
        key = ctx.key
        context = GuardContext(ctx.request_id, ctx.model, ctx.endpoint, getattr(key, "id", None), ctx.team, ctx)
        tasks = [asyncio.ensure_future(self._one(guard, text, direction, context)) for guard in guards]
        found: list[Any] = []
        outcome: Outcome = None
        try:
            for finished in asyncio.as_completed(tasks):
                guard, verdict, failure, spent = await finished
                self.metrics.timed(guard.name, direction, spent)
                if fired is not None and (verdict is not None or failure is not None):
                    fired.add(guard.name)
                if failure is not None:
                    blocks = guard.on_error == "block" and guard.mode == "enforce"
                    failed = Failure(guard.name, guard.layer, direction, failure, blocks)
                    self.metrics.failed.labels(guard.name, direction, "blocked" if blocks else "allowed").inc()
                    found.append(failed.to_json(guard.mode))
                    if blocks:
                        outcome = failed
                        break
                elif verdict is not None:
                    verdict = replace(verdict, latency_s=spent)
                    self.metrics.found(verdict)
                    found.append(verdict.to_json())
                    if verdict.blocks:
                        outcome = verdict
                        break
        finally:
            for task in tasks:
                task.cancel()
        if found:
            _annotate(ctx, direction, found)
        if outcome is not None:
            self.metrics.blocked.labels(ctx.model, direction).inc()
        return outcome

    @staticmethod
    async def _one(guard: CalledGuard, text: str, direction: Direction,
                   context: GuardContext) -> tuple[CalledGuard, Verdict | None, str | None, float]:
        started = perf_counter()
        verdict = failure = None
        try:
            async with asyncio.timeout(guard.timeout_s):
                verdict = await guard.judge(text, direction, context)
        except TimeoutError:
            failure = f"no verdict within {guard.timeout_s:g} s"
        except GuardFailed as exc:
            failure = str(exc)
        except Exception as exc:  # a hook's own bug: logged with its traceback, handled by on_error
            log.warning("guard %s failed on request %s", guard.name, context.request_id, exc_info=exc)
            failure = f"{type(exc).__name__}: {exc}"[:300]
        return guard, verdict, failure, perf_counter() - started


def _annotate(ctx: RequestContext, direction: Direction, found: list[Any]) -> None:
    previous = (ctx.annotations or {}).get(f"guard.{direction}")
    ctx.annotate(f"guard.{direction}", [*previous, *found] if isinstance(previous, list) else found)


_WORD_BREAK = re.compile(r"[\W_]")


def _tail(text: str, chars: int) -> str:
    """The last `chars` characters, from a word boundary on (a cut word could read as a listed one)."""
    if len(text) <= chars:
        return text
    cut = text[-chars:]
    boundary = _WORD_BREAK.search(cut)
    return cut[boundary.start():] if boundary is not None else ""


__all__ = ["GuardRunner"]
