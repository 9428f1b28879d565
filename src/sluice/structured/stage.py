"""The structured-output stage: every answer to a `response_format` is held to it.

Innermost in the chain (just before the routing terminal), so that a re-ask goes straight to the upstream and the
cache above stores only the answer the client gets. Per request with a JSON `response_format`:

- **stream through** — a stream whose every replica decodes under the format (`support.enforces`): chunks flow
  as generated; the chunk that finishes the answer carries the verdict (`structured_output`);
- **settle** — everything else: the upstream answers whole (a stream is buffered, then replayed), the answer is
  validated, repaired if near-JSON, and re-asked with the validation errors up to `max_attempts` and
  `retry_token_budget`. The usage of every attempt is summed into the answer's usage (so it is billed and
  logged); the attempts and the errors that caused them are annotated (`structured.attempts`) and counted.

An answer still invalid after the attempts is a 502 (`invalid_structured_output`), or with `on_failure: return`
the last answer, its verdict saying it is invalid.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.backends import ChatCompletionRequest, ChatMessage, Chunk, Completion, Usage, Whole, replay_chunks
from sluice.config import StructuredConfig
from sluice.errors import UpstreamError
from sluice.structured.answers import AnswerFormat, Verdict, canonical
from sluice.structured.constraints import constraint_of
from sluice.structured.metrics import StructuredMetrics
from sluice.structured.support import detect, enforces, extras_of, response_format_of, support_of, unenforced

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Next, Reply
    from sluice.gateway.context import RequestContext

MODE_HEADER = "x-sluice-structured-mode"
ATTEMPTS_HEADER = "x-sluice-structured-attempts"
VERDICT_FIELD = "structured_output"  # on the whole answer, or the stream's finishing chunk
_NOT_ASKED = Verdict(None, (), False)  # a choice that called a tool or refused: nothing to check
_CUT_OFF = "the answer was cut off at the token limit: give a shorter one"
_REASK = "Your answer did not match the required JSON format:\n{errors}\nReply with only the corrected JSON."


class StructuredOutputFailed(UpstreamError):
    """Every attempt's answer broke the response_format: the model's fault, so a 502 — that the OpenAI SDKs
    should not retry (each retry would spend every attempt again)."""

    response_headers: ClassVar[dict[str, str]] = {"x-should-retry": "false"}

    def __init__(self, attempts: int, errors: tuple[str, ...]) -> None:
        super().__init__(f"The model's answer did not match response_format after {attempts} attempt"
                         f"{'s' if attempts > 1 else ''}: {'; '.join(errors[:3])}", param="response_format",
                         code="invalid_structured_output")


class StructuredStage:
    """Holds answers to their `response_format` (the module docstring); absent when no model enforces."""

    name = "structured"

    def __init__(self, settings: StructuredConfig, metrics: StructuredMetrics) -> None:
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, call: Call, next: Next) -> Reply:
        request = call.request
        response_format = response_format_of(request)  # type: ignore[arg-type]
        if response_format is not None:
            answer_format = AnswerFormat.of(response_format)
        elif request.model_extra and (constraint := constraint_of(request.model_extra)) is not None:
            answer_format = AnswerFormat.of_constraint(constraint)  # vLLM's extras (a grammar: not checked here)
        else:
            return await next(call)
        if answer_format is None:
            return await next(call)
        if answer_format.compile_s:
            self.metrics.compile_seconds.observe(answer_format.compile_s)
        if call.pool is not None:
            for target in call.pool.targets:
                await detect(target.backend)  # `auto` backends: what they enforce, found out once
        if call.ctx.stream and (call.request.n or 1) == 1 and _guided_everywhere(call, answer_format):  # type: ignore[union-attr]
            return self._watch(call, await next(call), answer_format)
        return await self._settle(call, next, answer_format)

    # --- stream through ------------------------------------------------------------------------------------

    async def _watch(self, call: Call, reply: Reply, answer_format: AnswerFormat) -> AsyncGenerator[Chunk, None]:
        parts: list[str] = []
        judged = False
        async with aclosing(reply) as chunks:
            async for chunk in chunks:
                if chunk.text:
                    parts.append(chunk.text)
                if chunk.finish_reason is not None and not judged and (parts or chunk.finish_reason != "tool_calls"):
                    judged = True
                    started = perf_counter()
                    verdict = answer_format.check("".join(parts), repair=False)
                    _own_time(call.ctx, started)
                    mode = "guided" if verdict.valid else "failed"
                    chunk.payload[VERDICT_FIELD] = self._verdict(call.ctx, answer_format, mode, verdict, 1)
                    self._settled(call.ctx, mode, [_attempt(None, verdict)])
                yield chunk

    # --- settle: validate, repair, re-ask -------------------------------------------------------------------

    async def _settle(self, call: Call, next: Next, answer_format: AnswerFormat) -> Reply:
        ctx = call.ctx
        settings = self.settings
        request, body, stream = call.request, ctx.raw_body, ctx.stream
        attempts: list[dict[str, Any]] = []
        total: Usage | None = None
        ctx.stream = False  # buffered: the upstream answers whole; a stream is replayed from the answer
        try:
            while True:
                answer = await _whole(await next(call))
                total = _added(total, answer.usage)
                texts = _texts(answer, ctx)
                if not attempts and all(text is None for text in texts):  # tool calls or a refusal: no JSON asked
                    return _as_reply(answer, stream, ctx.endpoint)
                started = perf_counter()
                verdicts = [_NOT_ASKED if text is None else answer_format.check(text, repair=settings.repair)
                            for text in texts]
                _own_time(ctx, started)  # checking answers is this stage's time, not the gateway's overhead
                failed = next_invalid(verdicts)
                attempts.append(_attempt(answer.usage, failed or verdicts[0]))
                if failed is None:
                    break
                left = settings.retry_token_budget - sum(a["completion_tokens"] or 0 for a in attempts[1:])
                if len(attempts) >= settings.max_attempts or left <= 0 or not _may_reask(call.request):  # type: ignore[arg-type]
                    break
                errors = failed.errors + ((_CUT_OFF,) if answer.finish_reason == "length" else ())
                call.request, ctx.raw_body = _reask(call.request, ctx.raw_body, answer.text, errors, left)  # type: ignore[arg-type]
        except BaseException:
            ctx.usage = total  # the attempts so far are billed and logged however the request ends
            if attempts:
                ctx.annotate("structured.attempts", attempts)
            raise
        finally:
            call.request, ctx.raw_body, ctx.stream = request, body, stream
        mode = _mode(ctx, answer_format, verdicts, len(attempts))
        self._settled(ctx, mode, attempts)
        call.set_header(MODE_HEADER, mode)
        call.set_header(ATTEMPTS_HEADER, str(len(attempts)))
        if mode == "failed" and settings.on_failure == "error":
            ctx.usage = total
            raise StructuredOutputFailed(len(attempts), (failed or verdicts[0]).errors)
        answer = _final(answer, verdicts, total, ctx.endpoint, answer_format.kind)
        verdict = self._verdict(ctx, answer_format, mode, failed or verdicts[0], len(attempts))
        answer.payload[VERDICT_FIELD] = verdict
        return _as_reply(answer, stream, ctx.endpoint)

    def _verdict(self, ctx: RequestContext, answer_format: AnswerFormat, mode: str, verdict: Verdict,
                 attempts: int) -> dict[str, Any]:
        body: dict[str, Any] = {"valid": mode != "failed", "mode": mode, "attempts": attempts}
        if mode == "failed":
            body["errors"] = list(verdict.errors)
        target = ctx.target
        ignored = unenforced(answer_format.schema, target.backend) if target is not None else []
        if ignored:
            body["unenforced"] = ignored  # keywords the backend's decoder does not enforce (validated here)
        return body

    def _settled(self, ctx: RequestContext, mode: str, attempts: list[dict[str, Any]]) -> None:
        ctx.annotate("structured.mode", mode)
        ctx.annotate("structured.attempts", attempts)
        self.metrics.settled(ctx.model, mode, len(attempts))


def _own_time(ctx: RequestContext, started: float) -> None:
    """Work after `next` returned, added to this stage's account (gateway/chain.py times only the way down)."""
    ctx.stage_s[StructuredStage.name] = ctx.stage_s.get(StructuredStage.name, 0.0) + perf_counter() - started


def next_invalid(verdicts: list[Verdict]) -> Verdict | None:
    return next((verdict for verdict in verdicts if not verdict.valid), None)


def _guided_everywhere(call: Call, answer_format: AnswerFormat) -> bool:
    """Whether every replica that may serve decodes under the format (then a stream need not be buffered)."""
    pool = call.pool
    return pool is not None and all(_guided(target.backend, answer_format) for target in pool.targets)


def _guided(backend: Any, answer_format: AnswerFormat) -> bool:
    if answer_format.constraint is not None:
        extras = extras_of(backend)
        return extras is not None and answer_format.constraint.kind in extras
    return enforces(support_of(backend), answer_format.kind)


def _mode(ctx: RequestContext, answer_format: AnswerFormat, verdicts: list[Verdict], attempts: int) -> str:
    if next_invalid(verdicts) is not None:
        return "failed"
    if attempts > 1:
        return "reasked"
    if any(verdict.repaired for verdict in verdicts):
        return "repaired"
    target = ctx.target
    return "guided" if target is not None and _guided(target.backend, answer_format) else "validated"


def _attempt(usage: Usage | None, verdict: Verdict) -> dict[str, Any]:
    """One attempt as annotated: its tokens and what was wrong with its answer (nothing when valid)."""
    return {"prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "repaired": verdict.repaired, "errors": list(verdict.errors)}


async def _whole(reply: Reply) -> Completion:
    if type(reply) is Whole:
        return reply.answer  # type: ignore[return-value]
    async with aclosing(reply):
        return Completion.of_chunk(await anext(reply))


def _texts(answer: Completion, ctx: RequestContext) -> list[str | None]:
    """Each choice's text (chat: the message content; completions: the text); None for a choice that called a
    tool or refused instead (response_format holds the content only, as on OpenAI)."""
    choices = answer.payload.get("choices") or [{}]
    if ctx.endpoint != "chat":
        return [str(choice.get("text") or "") for choice in choices]
    texts: list[str | None] = []
    for choice in choices:
        message = choice.get("message") or {}
        content = message.get("content")
        texts.append(None if not content and (message.get("tool_calls") or message.get("refusal"))
                     else str(content or ""))
    return texts


def _added(total: Usage | None, usage: Usage | None) -> Usage | None:
    if usage is None:
        return total
    if total is None:
        return usage
    return Usage(total.prompt_tokens + usage.prompt_tokens, total.completion_tokens + usage.completion_tokens,
                 _sum(total.cached_tokens, usage.cached_tokens), _sum(total.reasoning_tokens, usage.reasoning_tokens),
                 _sum(total.cache_write_tokens, usage.cache_write_tokens))


def _sum(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _may_reask(request: Any) -> bool:
    """One choice, and a prompt the feedback can be added to (chat, or a completions prompt that is text)."""
    if (request.n or 1) != 1:
        return False
    return isinstance(request, ChatCompletionRequest) or isinstance(request.prompt, str)


def _reask(request: Any, body: dict[str, Any] | None, text: str, errors: tuple[str, ...],
           tokens_left: int) -> tuple[Any, dict[str, Any] | None]:
    """The request again, with the invalid answer and what was wrong with it; its output capped by the budget."""
    feedback = _REASK.format(errors="\n".join(f"- {error}" for error in errors))
    update: dict[str, Any] = {}
    if isinstance(request, ChatCompletionRequest):
        update["messages"] = [*request.messages, ChatMessage(role="assistant", content=text),
                              ChatMessage(role="user", content=feedback)]
        limit_field = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    else:
        update["prompt"] = f"{request.prompt}{text}\n\n{feedback}\n"
        limit_field = "max_tokens"
    update[limit_field] = min(getattr(request, limit_field) or tokens_left, tokens_left)
    new_body = None
    if body is not None:
        new_body = dict(body)
        new_body[limit_field] = update[limit_field]
        if "messages" in update:
            new_body["messages"] = [*body["messages"], {"role": "assistant", "content": text},
                                    {"role": "user", "content": feedback}]
        else:
            new_body["prompt"] = update["prompt"]
    return request.model_copy(update=update), new_body


def _final(answer: Completion, verdicts: list[Verdict], total: Usage | None, endpoint: str, kind: str) -> Completion:
    """The answer the client gets: repaired texts replaced by their JSON, and the usage of every attempt."""
    payload = answer.payload
    text = answer.text
    if any(verdict.repaired and verdict.valid for verdict in verdicts):
        choices = [dict(choice) for choice in payload.get("choices") or ()]
        for index, (choice, verdict) in enumerate(zip(choices, verdicts, strict=False)):
            if verdict.repaired and verdict.valid:
                fixed = canonical(verdict.value, kind)
                if endpoint == "chat":
                    choice["message"] = {**(choice.get("message") or {}), "content": fixed}
                else:
                    choice["text"] = fixed
                if index == 0:
                    text = fixed
        payload = {**payload, "choices": choices}
    if total is not None:
        payload = {**payload, "usage": total.to_dict()}
    return Completion(payload, text, total, answer.finish_reason)


def _as_reply(answer: Completion, stream: bool, endpoint: str) -> Reply:
    return _replayed(answer, endpoint) if stream else Whole(answer)  # type: ignore[return-value]


async def _replayed(answer: Completion, endpoint: str) -> AsyncGenerator[Chunk, None]:
    """The settled answer as the stream it would have been; its finishing chunk carries the verdict."""
    chunks = replay_chunks(answer, endpoint)
    verdict = answer.payload.get(VERDICT_FIELD)
    finishing = [chunk for chunk in chunks if chunk.finish_reason is not None]
    if finishing and verdict is not None:
        finishing[-1].payload[VERDICT_FIELD] = verdict
    for chunk in chunks:
        yield chunk


__all__ = ["ATTEMPTS_HEADER", "MODE_HEADER", "VERDICT_FIELD", "StructuredOutputFailed", "StructuredStage"]
