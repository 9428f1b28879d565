"""`GuardStage`: the chain stage that runs a model's guards on the prompt before anything else sees it, and on
the answer as it streams back (a sliding window with a hold-back), or on the whole answer.

Input: the first enforcing `block` refuses the request with a 400 `content_filter` error naming the guard and
category; nothing reaches the cache or the upstream. Output: the answer ends there with `finish_reason:
"content_filter"` (a stream: a final chunk, then the usage and `[DONE]` as usual). Every verdict — blocks, flags,
and what monitor-mode guards would have done — lands in the request log (`guard.input` / `guard.output`) and in
`sluice_guard_verdicts_total`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sluice.backends import ChatCompletionRequest, Chunk, Completion, Whole
from sluice.errors import InvalidRequest
from sluice.safety.guards import Direction, Guard, Verdict
from sluice.safety.metrics import SafetyMetrics

if TYPE_CHECKING:
    from sluice.backends import GenerationRequest
    from sluice.gateway.chain import Call, Next, Reply
    from sluice.gateway.context import RequestContext

GUARDS_HEADER = "x-sluice-guards"  # response: the guards that ran, in order; request: guards to add, by name
CONTENT_FILTER = "content_filter"
_HEAD_FIELDS = ("id", "created", "model", "system_fingerprint")


class ContentFiltered(InvalidRequest):
    """A guard refused the prompt."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"The request was refused by the gateway's content guard `{verdict.guard}` "
                         f"(category: {verdict.category}).", param="messages", code=CONTENT_FILTER)


class GuardStage:
    """A model's guards, plus any a request asks for by name in its `x-sluice-guards` header (a request can add
    defined guards, never drop the model's). In every chain once any guard is defined; a model without guards
    whose request asks for none passes with one header lookup."""

    name = "guards"

    def __init__(self, guards: list[Guard], defined: dict[str, Guard], metrics: SafetyMetrics, *,
                 window_chars: int, hold_back_chars: int) -> None:
        self.guards = guards
        self.defined = defined  # every guard in safety.guards, by name: what a request may add
        self.input = [guard for guard in guards if "input" in guard.directions]
        self.output = [guard for guard in guards if "output" in guard.directions]
        self.metrics = metrics
        self.window = window_chars
        self.hold_back = hold_back_chars
        self.header = ",".join(guard.name for guard in guards)

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx = call.ctx
        inputs, outputs, header = self.input, self.output, self.header
        sent = ctx.headers
        if GUARDS_HEADER in sent:
            inputs, outputs, header = self._with_requested(sent[GUARDS_HEADER])
        if not header:
            return await next(call)
        call.set_header(GUARDS_HEADER, header)
        if inputs and ctx.endpoint != "embeddings":
            self._checked(ctx, "input")
            masks: list[Guard] = []
            blocked = self._run(ctx, inputs, prompt_text(call.request), "input", masks=masks)  # type: ignore[arg-type]
            if blocked is not None:
                raise ContentFiltered(blocked)
            if masks:  # what goes upstream (and into the cache key) is the masked prompt
                mask_prompt(call.request, ctx.raw_body, masks)  # type: ignore[arg-type]
        reply = await next(call)
        if not outputs or ctx.endpoint == "embeddings":
            return reply
        if ctx.stream:
            return self._stream(ctx, reply, outputs)
        if type(reply) is Whole:
            return self._whole(ctx, reply, outputs)  # type: ignore[arg-type, return-value]
        return self._wrapped_whole(ctx, reply, outputs)

    def _with_requested(self, value: str) -> tuple[list[Guard], list[Guard], str]:
        """The model's guards, then the ones the request names (each once); a 400 for a name not defined."""
        guards = list(self.guards)
        for name in (part.strip() for part in value.split(",")):
            if not name or any(guard.name == name for guard in guards):
                continue
            guard = self.defined.get(name)
            if guard is None:
                known = ", ".join(sorted(self.defined))
                raise InvalidRequest(f"Unknown guard `{name[:64]}` in the `{GUARDS_HEADER}` header; defined guards: "
                                     f"{known}.", param=GUARDS_HEADER, code="unknown_guard")
            guards.append(guard)
        return ([guard for guard in guards if "input" in guard.directions],
                [guard for guard in guards if "output" in guard.directions], ",".join(g.name for g in guards))

    def _run(self, ctx: RequestContext, guards: list[Guard], text: str, direction: Direction,
             new_chars: int | None = None, masks: list[Guard] | None = None,
             fired: set[str] | None = None) -> Verdict | None:
        """Each guard in order until one blocks; every verdict recorded. Returns the blocking one, if any.

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
            previous = (ctx.annotations or {}).get(f"guard.{direction}")
            ctx.annotate(f"guard.{direction}", [*previous, *found] if isinstance(previous, list) else found)
        if blocking is not None:
            metrics.blocked.labels(ctx.model, direction).inc()
        return blocking

    def _checked(self, ctx: RequestContext, direction: Direction) -> None:
        self.metrics.checked.labels(ctx.model, direction).inc()

    # --- whole answers --------------------------------------------------------------------------------------

    def _whole(self, ctx: RequestContext, reply: Whole, outputs: list[Guard]) -> Whole:
        answer = reply.answer
        assert isinstance(answer, Completion)
        self._checked(ctx, "output")
        masks: list[Guard] = []
        if self._run(ctx, outputs, answer_text(answer.payload, ctx.endpoint), "output", masks=masks) is None:
            return Whole(masked_answer(answer, ctx.endpoint, masks)) if masks else reply
        return Whole(filtered(answer, ctx.endpoint))

    async def _wrapped_whole(self, ctx: RequestContext, reply: Reply, outputs: list[Guard]) -> Reply:
        async with contextlib.aclosing(reply):
            async for chunk in reply:
                answer = Completion.of_chunk(chunk)
                yield self._whole(ctx, Whole(answer), outputs).answer.as_chunk()

    # --- streams --------------------------------------------------------------------------------------------

    async def _stream(self, ctx: RequestContext, reply: Reply, outputs: list[Guard]) -> Reply:
        """Check the last `window` characters at every output chunk; hold the last `hold_back` characters back
        until a later check (or the end) clears them."""
        self._checked(ctx, "output")
        window, hold_back = self.window, self.hold_back
        seen = ""  # the end of the answer so far, at most `window` characters
        pending: list[Chunk] = []  # arrived, checked, not yet released to the client
        held = 0  # characters of text in `pending`
        fired: set[str] = set()  # guards that found something already (each is recorded once per answer)
        async with contextlib.aclosing(reply):
            async for chunk in reply:
                pending.append(chunk)
                if chunk.text:
                    seen = (seen + chunk.text)[-window:]
                    held += len(chunk.text)
                    if self._run(ctx, outputs, seen, "output", len(chunk.text), fired=fired) is not None:
                        yield cut_chunk(chunk.payload, ctx.endpoint)  # what was held back never goes out
                        return
                released = 0
                while released < len(pending) and held - len(pending[released].text) >= hold_back:
                    held -= len(pending[released].text)
                    released += 1
                if released:
                    yield_now, pending = pending[:released], pending[released:]
                    for early in yield_now[:-1]:
                        early.buffered = True  # released together: one write
                    for out in yield_now:
                        yield out
        for index, chunk in enumerate(pending):  # the end: everything was checked
            if index < len(pending) - 1:
                chunk.buffered = True
            yield chunk


_WORD_BREAK = re.compile(r"[\W_]")


def _tail(text: str, chars: int) -> str:
    """The last `chars` characters, from a word boundary on (a cut word could read as a listed one)."""
    if len(text) <= chars:
        return text
    cut = text[-chars:]
    boundary = _WORD_BREAK.search(cut)
    return cut[boundary.start():] if boundary is not None else ""


def prompt_text(request: GenerationRequest) -> str:
    """What input guards read: the users' messages (text parts too), or a completion's prompt strings. System
    and assistant messages are the operator's and the model's own."""
    if isinstance(request, ChatCompletionRequest):
        parts: list[str] = []
        for message in request.messages:
            if message.role != "user":
                continue
            content = message.content
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(part.get("text", "")) for part in content
                             if isinstance(part, dict) and part.get("type") == "text")
        return "\n".join(parts)
    prompt = request.prompt
    if isinstance(prompt, str):
        return prompt
    return "\n".join(item for item in prompt if isinstance(item, str))


def _masked(text: str, masks: list[Guard]) -> str:
    for guard in masks:
        text = guard.mask(text)  # type: ignore[attr-defined]
    return text


def mask_prompt(request: GenerationRequest, raw_body: dict[str, Any] | None, masks: list[Guard]) -> None:
    """Mask the users' messages (or the prompt) in the request and in the body forwarded upstream, in place."""

    def content(value: Any) -> Any:
        if isinstance(value, str):
            return _masked(value, masks)
        if isinstance(value, list):
            return [{**part, "text": _masked(part["text"], masks)}
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                    else part for part in value]
        return value

    if isinstance(request, ChatCompletionRequest):
        for message in request.messages:
            if message.role == "user":
                message.content = content(message.content)
        sent = raw_body.get("messages") if raw_body is not None else None
        for message in sent if isinstance(sent, list) else ():
            if isinstance(message, dict) and message.get("role") == "user":
                message["content"] = content(message.get("content"))
        return
    request.prompt = content(request.prompt)  # type: ignore[assignment]
    if raw_body is not None and "prompt" in raw_body:
        raw_body["prompt"] = content(raw_body["prompt"])


def masked_answer(answer: Completion, endpoint: str, masks: list[Guard]) -> Completion:
    """The answer with every choice's text masked (usage and everything else kept)."""
    payload = dict(answer.payload)
    choices = []
    for choice in payload.get("choices") or ():
        choice = dict(choice)
        if endpoint == "chat" and isinstance((choice.get("message") or {}).get("content"), str):
            choice["message"] = {**choice["message"], "content": _masked(choice["message"]["content"], masks)}
        elif endpoint != "chat" and isinstance(choice.get("text"), str):
            choice["text"] = _masked(choice["text"], masks)
        choices.append(choice)
    payload["choices"] = choices
    return Completion(payload, _masked(answer.text, masks), answer.usage, answer.finish_reason)


def answer_text(payload: dict[str, Any], endpoint: str) -> str:
    """Every choice's text of a whole answer (a chat message's content, a completion's text)."""
    texts = []
    for choice in payload.get("choices") or ():
        if endpoint == "chat":
            content = (choice.get("message") or {}).get("content")
            texts.append(content if isinstance(content, str) else "")
        else:
            texts.append(choice.get("text") or "")
    return "\n".join(texts)


def filtered(answer: Completion, endpoint: str) -> Completion:
    """The answer with its text withheld and `finish_reason: "content_filter"` on every choice (usage kept)."""
    payload = dict(answer.payload)
    choices = []
    for choice in payload.get("choices") or ():
        choice = {**choice, "finish_reason": CONTENT_FILTER, "logprobs": None}
        if endpoint == "chat":
            choice["message"] = {"role": "assistant", "content": ""}
        else:
            choice["text"] = ""
        choices.append(choice)
    payload["choices"] = choices
    return Completion(payload, "", answer.usage, CONTENT_FILTER)


def cut_chunk(like: dict[str, Any], endpoint: str) -> Chunk:
    """The last chunk of a stream a guard stopped: no text, `finish_reason: "content_filter"`."""
    head = {name: like[name] for name in _HEAD_FIELDS if name in like}
    if endpoint == "chat":
        head["object"] = "chat.completion.chunk"
        choice: dict[str, Any] = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": CONTENT_FILTER}
    else:
        head["object"] = "text_completion"
        choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": CONTENT_FILTER}
    return Chunk({**head, "choices": [choice]}, finish_reason=CONTENT_FILTER)


__all__ = ["CONTENT_FILTER", "GUARDS_HEADER", "ContentFiltered", "GuardStage", "answer_text", "cut_chunk",
           "filtered", "prompt_text"]
