"""The simulator as a service: OpenAI-shaped requests in, timed chunks out (the HTTP server and in-process use)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sluice.backends import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    Usage,
    collect,
    new_id,
    role_chunk,
    text_chunk,
    tool_call_chunk,
    usage_chunk,
)
from sluice.cost import count_message_tokens, count_prompt_tokens
from sluice.sim.async_engine import AsyncEngine
from sluice.sim.clock import Clock, MonotonicClock
from sluice.sim.cost import StepCost
from sluice.sim.engine import EngineCore, EngineRequest
from sluice.sim.errors import BadRequest, ContextLengthExceeded, InjectedError, StreamDropped
from sluice.sim.faults import FaultInjector, FaultPlan, RequestFaults
from sluice.sim.metrics import SimMetrics
from sluice.sim.scheduler import SchedulerConfig
from sluice.sim.structured import structured_pieces
from sluice.sim.text import TextGenerator, seed_for
from sluice.sim.tools import DEFAULT_TOOL_CALL_RATE, Step, tool_prompt_tokens, tool_steps

# Answer length when a request sets no max_tokens (a real model stops at its EOS token; we draw a length).
DEFAULT_OUTPUT_TOKENS = (32, 512)


@dataclass(slots=True, frozen=True)
class Answer:
    """What one request will produce, decided up front: the engine then only decides when."""

    prompt_tokens: int
    max_tokens: int
    pieces: tuple[Step, ...]  # one real token each: text, a piece of a tool call, or nothing shown
    num_output_tokens: int  # pieces, plus the hidden token that matched a stop string
    finish_reason: str


@dataclass(slots=True, frozen=True)
class Admission:
    """A request the simulator accepted: its arrival, its faults and its answer, ready to run."""

    call: BackendCall
    arrival_s: float
    faults: RequestFaults
    answer: Answer


class Simulator:
    """A simulated vLLM server in-process: engine, output text, metrics and fault injection.

    `stream(call)` / `complete(call)` speak the gateway's `Backend` types, so a gateway backend can
    call them directly; the HTTP server (`sluice.sim.server`) is a thin layer over the same calls.
    Call `await start()` inside the event loop that will serve, and `await stop()` at the end.
    """

    def __init__(self, cost: StepCost, config: SchedulerConfig | None = None, *, served_model_name: str,
                 tokenizer_model: str | None = None, seed: int = 0, faults: FaultPlan | None = None,
                 clock: Clock | None = None, description: str = "", request_overhead_s: float = 0.0,
                 tool_call_rate: float = DEFAULT_TOOL_CALL_RATE) -> None:
        self.model_name = served_model_name
        self.tool_call_rate = tool_call_rate  # share of `tool_choice: auto` answers that call a tool
        # Time from arrival to the engine (HTTP, tokenisation, hand-off): part of TTFT, outside the steps.
        self.request_overhead_s = request_overhead_s
        self.description = description
        self.seed = seed
        self.clock: Clock = clock or MonotonicClock()
        self.core = EngineCore(cost, config)
        self.metrics = SimMetrics(served_model_name, self.core, lambda: self.engine.lag_s)
        self.engine = AsyncEngine(self.core, self.clock, on_step=self.metrics.observe_step)
        self.text = TextGenerator(tokenizer_model or served_model_name)
        self.faults = FaultInjector(now_s=self.clock.now())
        self.set_faults(faults or FaultPlan())

    @property
    def max_model_len(self) -> int:
        return self.core.max_model_len

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults.set_plan(plan, now_s=self.clock.now())
        self.core.slowdown = plan.slowdown

    def refuse_connection(self) -> bool:
        """Whether fault injection refuses a new connection now (the caller closes it)."""
        refused = self.faults.refuse_connection(self.clock.now())
        if refused:
            self.metrics.observe_fault("refuse")
        return refused

    def plan_answer(self, call: BackendCall) -> Answer:
        """Count the prompt, check it against max_model_len (vLLM's 400s) and fix the answer's tokens: prose; tool
        calls where the request's tools and `tool_choice` call for them; for a `response_format` asking for JSON, a
        value the format accepts (each cut at max_tokens like a real model)."""
        request = call.request
        if (request.n or 1) > 1:
            raise BadRequest("The simulator generates one choice per request (n=1).", param="n")
        if isinstance(request, ChatCompletionRequest):
            prompt_tokens = count_message_tokens(request.messages, self.text.model)
            prompt_tokens += tool_prompt_tokens(request, self.text.model)
            key: object = [(m.role, m.content) for m in request.messages]
        else:
            prompt_tokens = _completion_prompt_tokens(request, self.text.model)
            key = request.prompt
        limit = self.max_model_len
        if prompt_tokens >= limit:
            raise ContextLengthExceeded.for_input(limit, prompt_tokens)
        requested = request.output_limit
        if requested is not None and prompt_tokens + requested > limit:
            raise ContextLengthExceeded.for_max_tokens(limit, prompt_tokens, requested)
        seed = seed_for(self.seed, "seed", request.seed) if request.seed is not None else seed_for(self.seed, key)
        max_tokens = requested if requested is not None else limit - prompt_tokens
        calls = tool_steps(request, seed, self.text.model, self.tool_call_rate)
        if calls is not None:  # stop strings do not cut a call
            length = min(len(calls), max_tokens)
            return Answer(prompt_tokens, max_tokens, tuple(calls[:length]), length,
                          "tool_calls" if length == len(calls) else "length")
        pieces: list[str]
        structured = structured_pieces(request, seed, self.text.model)
        if structured is not None:  # the JSON's end is the answer's end (ignore_eos does not lengthen it)
            length = min(len(structured), max_tokens)
            finish_reason = "stop" if length == len(structured) else "length"
            pieces = structured[:length]
        else:
            if requested is not None or _extra(request, "ignore_eos"):
                length, finish_reason = max_tokens, "length"
            else:
                length = min(max_tokens, random.Random(seed).randint(*DEFAULT_OUTPUT_TOKENS))
                finish_reason = "stop" if length < max_tokens else "length"
            pieces = self.text.pieces(seed, length)
        stopped = _cut_at_stop(pieces, request.stop_list)
        if stopped is not None:  # as in vLLM, tokens up to the one completing the stop string count, unshown
            kept, generated = stopped
            return Answer(prompt_tokens, max_tokens, tuple(kept), generated, "stop")
        return Answer(prompt_tokens, max_tokens, tuple(pieces), length, finish_reason)

    def admit(self, call: BackendCall) -> Admission:
        """Everything decided before the engine sees the request; raises the error answers (`SimError`)."""
        arrival_s = self.clock.now()
        faults = self.faults.for_request()
        answer = self.plan_answer(call)
        if faults.error_status is not None:
            self.metrics.observe_fault("error")
            raise InjectedError(faults.error_status, retry_after_s=faults.retry_after_s)
        for kind in faults.kinds:
            self.metrics.observe_fault(kind)
        self.metrics.observe_admitted(answer.max_tokens)
        return Admission(call, arrival_s, faults, answer)

    async def run(self, admission: Admission) -> AsyncIterator[Chunk]:
        """The admitted request's chunks as the engine times them: role (chat), one per token, usage.

        Raises `StreamDropped` where a fault cuts the stream; closing it early aborts the request.
        """
        call, faults, answer = admission.call, admission.faults, admission.answer
        if self.request_overhead_s or faults.delay_s:
            await self.clock.sleep_until(admission.arrival_s + self.request_overhead_s + faults.delay_s)
        response_id, created = new_id(call.endpoint), int(time.time())
        # The response id, not the caller's request id: a retry may reuse that while the first try still runs.
        request = EngineRequest(response_id, answer.prompt_tokens, answer.num_output_tokens, answer.finish_reason,
                                admission.arrival_s)
        finished = False
        try:
            async with contextlib.aclosing(self.engine.generate(request)) as events:
                async for event in events:
                    if event.index == faults.drop_after_tokens:
                        raise StreamDropped(f"injected fault: stream dropped after {event.index} tokens")
                    if event.index == faults.stall_after_tokens:
                        await self.clock.sleep_until(self.clock.now() + faults.stall_s)
                    if event.index == 0 and call.endpoint == "chat":
                        yield role_chunk(call, response_id, created)
                    piece = answer.pieces[event.index] if event.index < len(answer.pieces) else ""
                    finished = event.finished
                    if isinstance(piece, str):
                        yield text_chunk(call, response_id, created, piece, event.finish_reason)
                        continue
                    if piece is not None:
                        yield tool_call_chunk(call, response_id, created, piece)
                    if event.finish_reason is not None:
                        yield text_chunk(call, response_id, created, "", event.finish_reason)
        finally:
            if not finished:
                self.metrics.observe_abort()
        yield usage_chunk(call, response_id, created, Usage(answer.prompt_tokens, answer.num_output_tokens))

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        """`admit` then `run`: the in-process equivalent of one streamed HTTP request."""
        async with contextlib.aclosing(self.run(self.admit(call))) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, call: BackendCall) -> Completion:
        return await self.collect(call, self.run(self.admit(call)))

    @staticmethod
    async def collect(call: BackendCall, chunks: AsyncIterator[Chunk]) -> Completion:
        """A whole answer from the chunks (non-streaming is the stream collected)."""
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            return await collect(call, chunks)


def _extra(request: ChatCompletionRequest | CompletionRequest, name: str) -> object:
    return (request.model_extra or {}).get(name)


def _completion_prompt_tokens(request: CompletionRequest, model: str) -> int:
    prompt = request.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (list, str)) and len(prompt) > 1:
        raise BadRequest("The simulator serves one prompt per request.", param="prompt")
    if request.echo:
        raise BadRequest("echo is not supported by the simulator.", param="echo")
    tokens = count_prompt_tokens(prompt, model)
    if tokens == 0:
        raise BadRequest("The prompt is empty.", param="prompt")
    return tokens


def _cut_at_stop(pieces: list[str], stops: list[str]) -> tuple[list[str], int] | None:
    """(the pieces wholly before the first stop string, tokens generated up to the one completing it)."""
    text = "".join(pieces)
    hits = [(index, index + len(stop)) for stop in stops if stop and (index := text.find(stop)) >= 0]
    if not hits:
        return None
    start, end = min(hits)
    kept: list[str] = []
    generated = offset = 0
    for piece in pieces:
        if offset + len(piece) <= start:
            kept.append(piece)
        generated += 1
        offset += len(piece)
        if offset >= end:
            break
    return kept, generated
