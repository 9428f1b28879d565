"""`GuardStage`: the chain stage that runs a model's guards on the prompt before anything else sees it, and on
the answer as it streams back (a sliding window with a hold-back), or on the whole answer.

Input: local guards first (microseconds), then called guards (models, hooks) concurrently, stopping at the first
enforcing `block`: the request is refused with a 400 `content_filter` error naming the guard and category, and
nothing reaches the cache or the upstream. A called guard with `when: during` runs beside the upstream call and
the answer is held until it passes. Output: the answer ends there with `finish_reason: "content_filter"` (a
stream: a final chunk, then the usage and `[DONE]` as usual). Every verdict — blocks, flags, what monitor-mode
guards would have done, and guards that failed — lands in the request log (`guard.input` / `guard.output`) and
in the guard metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from sluice.backends import Chunk, Completion, Whole
from sluice.config import GuardPolicy
from sluice.errors import Forbidden, InvalidRequest
from sluice.safety.build import is_called
from sluice.safety.guards import Direction, Guard
from sluice.safety.metrics import SafetyMetrics
from sluice.safety.outcomes import ContentFiltered, Failure, GuardUnavailable, Outcome, refuse
from sluice.safety.payloads import (
    CONTENT_FILTER,
    Rewrite,
    answer_rewrite,
    answer_text,
    cut_chunk,
    filtered,
    input_masking,
    mask_prompt,
    masked_answer,
    prompt_text,
    rewritten_answer,
    rewritten_release,
)
from sluice.safety.plan import AnyGuard, Plan
from sluice.safety.running import GuardRunner

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Next, Reply
    from sluice.gateway.context import RequestContext

log = logging.getLogger("sluice.safety")

GUARDS_HEADER = "x-sluice-guards"  # response: the guards that ran, in order; request: guards to add (or -skip)
GUARD_CALL = "guard.parent_request_id"  # the annotation on a guard's own model call: the request it checks
class GuardStage:
    """A model's guards; then what the caller's team and key add (`safety.teams` / `safety.keys`); then what the
    request's `x-sluice-guards` header asks: `name` adds a defined guard, `-name` drops one the key or team may
    skip. In every generation chain once any guard is defined; a model without guards whose request asks for none
    passes with one header lookup."""

    name = "guards"

    def __init__(self, guards: list[AnyGuard], defined: dict[str, AnyGuard], metrics: SafetyMetrics, *,
                 window_chars: int, hold_back_chars: int, teams: dict[str, GuardPolicy] | None = None,
                 keys: dict[str, GuardPolicy] | None = None) -> None:
        self.guards = guards
        self.defined = defined  # every guard in safety.guards, by name: what a request may add
        self.metrics = metrics
        self.window = window_chars
        self.hold_back = hold_back_chars
        self.teams = teams or {}
        self.keys = keys or {}
        self.runner = GuardRunner(metrics)
        self.plan = Plan.of(guards)
        self._plans: dict[tuple[str, ...], Plan] = {}  # by guard names: the lists other requests ended with

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx = call.ctx
        if ctx.annotations is not None and GUARD_CALL in ctx.annotations:
            return await next(call)  # a guard's own model call (Llama Guard) is not guarded again
        plan = self.plan
        if self.teams or self.keys or GUARDS_HEADER in ctx.headers:
            plan = self._plan_for(ctx)
        if not plan.header:
            return await next(call)
        call.set_header(GUARDS_HEADER, plan.header)
        vault: dict[str, str] | None = None  # numbered placeholders -> the prompt's values (pii `unmask`)
        waiting: asyncio.Future[Outcome] | None = None  # `during` guards: the answer waits for them
        trailing: asyncio.Future[Outcome] | None = None  # monitor-mode called guards: recorded, never waited for
        if plan.inputs:
            self._checked(ctx, "input")
            text = prompt_text(call.request)  # type: ignore[arg-type]
            masks: list[Guard] = []
            blocked = self.runner.run(ctx, plan.local_in, text, "input", masks=masks)
            if blocked is not None:
                raise ContentFiltered(blocked)
            if masks:  # what goes upstream (and into the cache key, and to called guards) is the masked prompt
                vault = {} if any(getattr(guard, "unmask", False) for guard in masks) else None
                mask_prompt(call.request, ctx.raw_body, input_masking(masks, vault))  # type: ignore[arg-type]
                text = prompt_text(call.request)  # type: ignore[arg-type]
            if plan.before:
                refuse(await self.runner.judge(ctx, plan.before, text, "input"))
            if plan.during:
                waiting = asyncio.ensure_future(self.runner.judge(ctx, plan.during, text, "input"))
            if plan.trailing:
                trailing = asyncio.ensure_future(self.runner.judge(ctx, plan.trailing, text, "input"))
        try:
            reply = await next(call)
        except BaseException:
            _cancel(waiting, trailing)
            raise
        if waiting is not None or trailing is not None:
            reply = _after_input(reply, waiting, trailing)
        if not plan.outputs and not vault:
            return reply
        rewrite = answer_rewrite(plan.mask_out, vault)
        if ctx.stream:
            return self._stream(ctx, reply, plan, rewrite)
        if type(reply) is Whole and not plan.called_out and not plan.monitor_out:
            return self._whole(ctx, reply, plan.each_out + plan.strided_out, vault)  # type: ignore[arg-type]
        return self._wrapped_whole(ctx, reply, plan, rewrite)

    # --- which guards ---------------------------------------------------------------------------------------

    def _plan_for(self, ctx: RequestContext) -> Plan:
        """The model's guards, the team's and key's additions, then the request's `+name` / `-name`."""
        names = [guard.name for guard in self.guards]
        may_skip: set[str] = set()
        key = ctx.key
        for policy in (self.teams.get(ctx.team or ""),
                       self.keys.get(key.id) or self.keys.get(key.name) if key is not None else None):
            if policy is not None:
                names.extend(name for name in policy.guards if name not in names)
                may_skip.update(policy.may_skip)
        asked = ctx.headers.get(GUARDS_HEADER)
        if asked is not None:
            for part in (part.strip() for part in asked.split(",")):
                if not part:
                    continue
                skip = part.startswith("-")
                name = part.lstrip("+-").strip()
                if name not in self.defined:
                    known = ", ".join(sorted(self.defined))
                    raise InvalidRequest(f"Unknown guard `{name[:64]}` in the `{GUARDS_HEADER}` header; defined "
                                         f"guards: {known}.", param=GUARDS_HEADER, code="unknown_guard")
                if not skip:
                    if name not in names:
                        names.append(name)
                elif name in names:
                    if name not in may_skip:
                        raise Forbidden(f"This key may not skip the guard `{name}` (`{GUARDS_HEADER}: -{name}`); "
                                        f"an admin can allow it under safety.teams or safety.keys (may_skip).",
                                        param=GUARDS_HEADER, code="guard_not_skippable")
                    names.remove(name)
        chosen = tuple(names)
        plan = self._plans.get(chosen)
        if plan is None:
            if len(self._plans) >= 256:  # requests can combine guards freely: keep the cache bounded
                self._plans.clear()
            plan = self._plans[chosen] = Plan.of([self.defined[name] for name in chosen])
        return plan

    def _checked(self, ctx: RequestContext, direction: Direction) -> None:
        self.metrics.count_checked(ctx.model, direction)

    # --- whole answers --------------------------------------------------------------------------------------

    def _whole(self, ctx: RequestContext, reply: Whole, outputs: list[Guard],
               vault: dict[str, str] | None = None) -> Whole:
        """A whole answer: checked once; masked (and the prompt's values put back) if it passes."""
        answer = reply.answer
        assert isinstance(answer, Completion)
        found: list[Guard] = []  # the masking guards that found something: only they have anything to mask
        if outputs:
            self._checked(ctx, "output")
            text = answer_text(answer.payload, ctx.endpoint)
            if self.runner.run(ctx, outputs, text, "output", masks=found) is not None:
                return Whole(filtered(answer, ctx.endpoint))
        rewrite = answer_rewrite(found, vault)
        return Whole(rewritten_answer(answer, ctx.endpoint, rewrite)) if rewrite is not None else reply

    async def _wrapped_whole(self, ctx: RequestContext, reply: Reply, plan: Plan, rewrite: Rewrite | None) -> Reply:
        async with contextlib.aclosing(reply):
            async for chunk in reply:
                answer = Completion.of_chunk(chunk)
                checked = self._whole(ctx, Whole(answer), plan.each_out + plan.strided_out).answer
                assert isinstance(checked, Completion)
                if checked.finish_reason != CONTENT_FILTER and (plan.called_out or plan.monitor_out):
                    text = answer_text(masked_answer(answer, ctx.endpoint, plan.mask_out).payload, ctx.endpoint)
                    monitors = self.runner.judge(ctx, plan.monitor_out, text, "output")
                    outcome, _ = await asyncio.gather(self.runner.judge(ctx, plan.called_out, text, "output"), monitors)
                    if outcome is not None:
                        checked = filtered(answer, ctx.endpoint)
                if checked.finish_reason != CONTENT_FILTER and rewrite is not None:
                    checked = rewritten_answer(answer, ctx.endpoint, rewrite)
                yield checked.as_chunk()

    # --- streams --------------------------------------------------------------------------------------------

    async def _stream(self, ctx: RequestContext, reply: Reply, plan: Plan, rewrite: Rewrite | None = None) -> Reply:
        """Check the answer as it streams: cheap guards at every chunk on the last `window` characters, costlier
        ones each `every_chars` of new text; text is released only once every enforcing guard has checked it and
        it is `hold_back` characters behind the newest (a match split across chunks is caught before it leaves)."""
        if plan.outputs:
            self._checked(ctx, "output")
        window, hold_back = self.window, self.hold_back
        each, strided, called = plan.each_out, plan.strided_out, plan.called_out
        paced: list[Any] = [*strided, *called]  # guards that check every `every_chars`
        holding = [guard for guard in paced if guard.mode == "enforce"]  # ... and hold text until they have
        # A matcher (pii) must also see `hold_back` characters past what leaves, as the rule guards do (a match
        # split at its last check); a judging guard (a classifier, a model) only needs to have read it.
        matchers = [guard.name for guard in holding if guard.layer == "pii"]
        judges = [guard.name for guard in holding if guard.layer != "pii"]
        keep = bool(paced or plan.monitor_out)
        seen = ""  # the end of the answer so far, at most `window` characters
        parts: list[str] = []  # the whole answer, when a paced or called guard reads it
        total = 0  # characters so far
        checked = {guard.name: 0 for guard in paced}  # how far each paced guard has read
        due_at = min((guard.every_chars for guard in paced), default=1 << 62)  # when the next paced check is due
        pending: list[tuple[Chunk, int]] = []  # arrived, not yet released: (chunk, answer length after it)
        fired: set[str] = set()  # guards that found something already (each is recorded once per answer)
        async with contextlib.aclosing(reply):
            async for chunk in reply:
                text = chunk.text
                if text:
                    total += len(text)
                    seen = (seen + text)[-window:]
                    if keep:
                        parts.append(text)
                    blocked: Outcome = None
                    if each:
                        blocked = self.runner.run(ctx, each, seen, "output", len(text), fired=fired)
                    if blocked is None and total >= due_at:  # a paced guard is due (one comparison otherwise)
                        blocked = await self._paced(ctx, paced, checked, parts, total, fired, final=False)
                        due_at = min(checked[guard.name] + guard.every_chars for guard in paced)
                    if blocked is not None:
                        yield cut_chunk(chunk.payload, ctx.endpoint)  # what was held back never goes out
                        return
                pending.append((chunk, total))
                safe = min([total, *(checked[name] for name in matchers)]) - hold_back
                if judges:
                    safe = min([safe, *(checked[name] for name in judges)])
                released = 0
                while released < len(pending) and pending[released][1] <= safe:
                    released += 1
                if released:
                    out, pending = pending[:released], pending[released:]
                    if rewrite is not None:  # masked text only; never a prefix that splits what the whole would mask
                        out, pending = rewritten_release(out, pending, rewrite, ctx.endpoint)
                    for index, (early, _) in enumerate(out):
                        if index < len(out) - 1:
                            early.buffered = True  # released together: one write
                        yield early
        if paced or plan.monitor_out:  # the end: what paced guards have not read yet, and the monitors' one look
            outcome = await self._paced(ctx, paced, checked, parts, total, fired, final=True)
            if plan.monitor_out:
                await self.runner.judge(ctx, plan.monitor_out, "".join(parts), "output", fired)
            if outcome is not None:
                yield cut_chunk(pending[-1][0].payload if pending else {}, ctx.endpoint)
                return
        if rewrite is not None and pending:
            pending, _ = rewritten_release(pending, [], rewrite, ctx.endpoint)
        for index, (chunk, _) in enumerate(pending):  # everything was checked
            if index < len(pending) - 1:
                chunk.buffered = True
            yield chunk

    async def _paced(self, ctx: RequestContext, paced: list[Any], checked: dict[str, int], parts: list[str],
                     total: int, fired: set[str], *, final: bool) -> Outcome:
        """The paced guards due now (or, at the end, all with unread text): local ones on the text since their last
        check (plus a window's overlap), called ones on the whole answer so far."""
        due = [guard for guard in paced
               if total > checked[guard.name] and (final or total - checked[guard.name] >= guard.every_chars)]
        if not due:
            return None
        answer = "".join(parts)
        outcome: Outcome = None
        local = [guard for guard in due if not is_called(guard)]
        if local:
            since = min(checked[guard.name] for guard in local)
            outcome = self.runner.run(ctx, local, answer[max(0, since - self.window):], "output", fired=fired)
        called = [guard for guard in due if is_called(guard)]
        if outcome is None and called:
            outcome = await self.runner.judge(ctx, called, answer, "output", fired)
        for guard in due:
            checked[guard.name] = total
        return outcome


async def _after_input(reply: Reply, waiting: asyncio.Future[Outcome] | None,
                       trailing: asyncio.Future[Outcome] | None) -> Reply:
    """The reply once `during` guards passed (a block refuses it before any of it leaves); monitor-mode guards
    are awaited at its end so that their verdicts reach the request log."""
    try:
        async with contextlib.aclosing(reply):
            if waiting is not None:
                refuse(await waiting)
            async for chunk in reply:
                yield chunk
        if trailing is not None:
            await trailing
    finally:
        _cancel(waiting, trailing)


def _cancel(*futures: asyncio.Future[Any] | None) -> None:
    for future in futures:
        if future is not None and not future.done():
            future.cancel()


__all__ = ["GUARDS_HEADER", "GUARD_CALL", "ContentFiltered", "Failure", "GuardStage", "GuardUnavailable"]
