"""In-process generation: a worker thread produces tokens, streamed to the event loop as OpenAI chunks."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.backends._local_tools import ToolCallReader, message_text
from sluice.backends._text_stream import IncrementalDetokenizer, StopScanner
from sluice.backends.base import ServedAdapter
from sluice.backends.chunks import collect, new_id, role_chunk, text_chunk, tool_call_chunk, usage_chunk
from sluice.backends.factory import local_structured_output
from sluice.backends.guided import TEXT_ONLY, format_type
from sluice.backends.tool_calls import tool_choice_of
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    Usage,
)
from sluice.errors import BackendNotReady, InvalidRequest, SluiceError, UpstreamError, UpstreamStreamBroken

log = logging.getLogger("sluice.backends")
DEFAULT_MAX_TOKENS = 256  # local CPU models ramble; OpenAI's "until the context ends" is too costly here


@dataclass(slots=True, frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int  # always set: a random one when the request has none, so one code path samples
    stop: tuple[str, ...]
    presence_penalty: float
    frequency_penalty: float


@dataclass(slots=True)
class TokenRun:
    """A prepared generation: the counted prompt and the runtime's (endless) stream of sampled token ids."""

    prompt_tokens: int
    tokens: Iterator[int]
    context_tokens: int | None  # the model's window; prompt + completion must fit in it
    tool_calls: bool = False  # decoded under the tool grammar: the text is read for calls (_local_tools.py)


class TokenModel(Protocol):
    """What a local runtime provides; every method runs on the worker thread, one generation at a time.

    A runtime that enforces JSON formats itself says so in a `response_formats` attribute (`enforced_formats`);
    without one, a request for anything but text is refused. One that decodes tool calls under a grammar says so
    in a true `tool_calls` attribute; without it, a request that needs a call is refused. One that applies a LoRA
    adapter says which in an `adapter` attribute (a `ServedAdapter`).
    """

    def begin(self, call: BackendCall, sampling: Sampling) -> TokenRun: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def is_end(self, token_id: int) -> bool: ...


def enforced_formats(model: TokenModel) -> frozenset[str]:
    """The `response_format` types a model enforces while decoding: its `response_formats`, else text only."""
    return getattr(model, "response_formats", TEXT_ONLY)


def guides_tools(model: TokenModel) -> bool:
    """Whether a model decodes tool calls under a grammar (its `tool_calls`)."""
    return bool(getattr(model, "tool_calls", False))


def sampling_for(call: BackendCall, formats: frozenset[str] = TEXT_ONLY, tool_calls: bool = False) -> Sampling:
    """Validate what a single-sequence local runtime can honour and fix the sampling parameters."""
    request = call.request
    if (request.n or 1) > 1:
        raise InvalidRequest("local backends generate one choice; n must be 1", param="n")
    if format_type(request) not in formats:
        raise InvalidRequest(f"this local backend supports response_format {' and '.join(sorted(formats))} only",
                             param="response_format")
    forced = False
    if isinstance(request, ChatCompletionRequest):
        forced = bool(request.tools) and tool_choice_of(request).forced
        if forced and not tool_calls:
            raise InvalidRequest("this local backend cannot guarantee a tool call: it has no grammar engine (the gguf "
                                 "runtime with llguidance has one); send tool_choice auto or none",
                                 param="tool_choice", code="unsupported_parameter")
        if forced and format_type(request) != "text":
            raise InvalidRequest("a tool_choice that requires a call and a JSON response_format cannot both shape "
                                 "one answer; send one of them", param="tool_choice")
    elif request.echo or request.suffix:
        raise InvalidRequest("local backends support neither echo nor suffix", param="echo")
    return Sampling(
        max_tokens=request.output_limit or DEFAULT_MAX_TOKENS,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=random.getrandbits(32) if request.seed is None else request.seed,
        stop=() if forced else tuple(stop for stop in request.stop_list if stop),  # a stop must not cut a call
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
    )


def chat_messages(request: ChatCompletionRequest) -> list[dict[str, str]]:
    """Messages as plain role/content strings, the shape chat templates expect; an assistant turn's tool calls
    written after its text as the model writes them, a tool result as the `tool` turn's content."""
    messages = []
    for message in request.messages:
        content = message.content
        if isinstance(content, list):
            if any(part.get("type") != "text" for part in content):
                raise InvalidRequest("local backends accept only text content parts", param="messages")
            content = "".join(str(part.get("text", "")) for part in content)
        messages.append({"role": message.role, "content": message_text(message, content or "")})
    return messages


def plain_chat_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The fallback for models without a chat template: role-prefixed lines ending in an assistant turn."""
    return "".join(f"{message['role']}: {message['content']}\n" for message in messages) + "assistant:"


def completion_prompt(request: CompletionRequest) -> str | list[int]:
    """The one prompt of a completions request: text, or token ids used as they are."""
    prompt: Any = request.prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)):
        return prompt
    raise InvalidRequest("local backends take one prompt per request", param="prompt")


@dataclass(slots=True, frozen=True)
class _Started:
    prompt_tokens: int
    tool_calls: bool


@dataclass(slots=True, frozen=True)
class _Finished:
    finish_reason: str
    completion_tokens: int


_Item = str | _Started | _Finished | BaseException  # what the worker hands the event loop


class ThreadedGenerator:
    """Runs one `TokenModel` generation at a time on its own thread and streams it as chunks."""

    def __init__(self, backend_name: str, model: TokenModel) -> None:
        self.backend_name = backend_name
        self._model = model
        self._lock = threading.Lock()  # the runtimes are not thread-safe: one generation per model

    async def complete(self, call: BackendCall) -> Completion:
        return await collect(call, self.stream(call))

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        sampling = sampling_for(call, enforced_formats(self._model), guides_tools(self._model))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        worker = threading.Thread(target=self._work, args=(call, sampling, cancel, emit), daemon=True,
                                  name=f"sluice-generate-{self.backend_name}")
        worker.start()
        response_id, created = new_id(call.endpoint), int(time.time())
        started, prompt_tokens = False, 0
        reader: ToolCallReader | None = None  # reads calls out of the text when the tool grammar is on
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    started = True
                    for piece in [item] if reader is None else reader.feed(item):
                        yield (text_chunk(call, response_id, created, piece) if isinstance(piece, str)
                               else tool_call_chunk(call, response_id, created, piece))
                elif isinstance(item, _Started):
                    prompt_tokens = item.prompt_tokens
                    reader = ToolCallReader() if item.tool_calls else None
                    if call.endpoint == "chat":
                        yield role_chunk(call, response_id, created)
                elif isinstance(item, _Finished):
                    finish_reason = item.finish_reason
                    if reader is not None:
                        if held := reader.finish():
                            yield text_chunk(call, response_id, created, held)
                        finish_reason = "tool_calls" if reader.calls and finish_reason == "stop" else finish_reason
                    yield text_chunk(call, response_id, created, "", finish_reason=finish_reason)
                    usage = Usage(prompt_tokens, item.completion_tokens)
                    yield usage_chunk(call, response_id, created, usage)
                    return
                elif isinstance(item, SluiceError) or not isinstance(item, Exception):
                    raise item  # request errors and interrupts pass through as they are
                else:
                    message = f"local backend `{self.backend_name}` failed: {type(item).__name__}: {item}"
                    raise (UpstreamStreamBroken if started else UpstreamError)(message) from item
        finally:
            cancel.set()  # done, failed or disconnected: the worker ends at its next token

    def _work(self, call: BackendCall, sampling: Sampling, cancel: threading.Event,
              emit: Callable[[_Item], None]) -> None:
        try:
            with self._lock:
                if not cancel.is_set():
                    self._generate(call, sampling, cancel, emit)
        except BaseException as exc:
            emit(exc)

    def _generate(self, call: BackendCall, sampling: Sampling, cancel: threading.Event,
                  emit: Callable[[_Item], None]) -> None:
        run = self._model.begin(call, sampling)
        limit = sampling.max_tokens
        if run.context_tokens is not None:
            if run.prompt_tokens >= run.context_tokens:
                raise InvalidRequest(
                    f"The prompt is {run.prompt_tokens} tokens; the model's context is {run.context_tokens}.",
                    param="messages" if call.endpoint == "chat" else "prompt",
                    code="context_length_exceeded")
            limit = min(limit, run.context_tokens - run.prompt_tokens)
        emit(_Started(run.prompt_tokens, run.tool_calls))
        detokenizer, scanner = IncrementalDetokenizer(self._model.decode), StopScanner(sampling.stop)
        finish_reason, count, stopped = "length", 0, False
        try:
            for token_id in run.tokens:
                if cancel.is_set():
                    return
                if self._model.is_end(token_id):
                    finish_reason = "stop"
                    break
                count += 1
                text, stopped = scanner.feed(detokenizer.push(token_id))
                if text:
                    emit(text)
                if stopped:
                    finish_reason = "stop"
                    break
                if count >= limit:
                    break
        finally:
            close = getattr(run.tokens, "close", None)
            if close is not None:
                close()  # lets the runtime's generator release its state on this thread
        if not stopped:
            text, stopped = scanner.feed(detokenizer.flush())
            tail = text if stopped else text + scanner.flush()
            finish_reason = "stop" if stopped else finish_reason
            if tail:
                emit(tail)
        emit(_Finished(finish_reason, count))


class LocalGenerationBackend:
    """Chat and completions over a `TokenModel` that `start()` loads in a thread; subclasses say how to load."""

    type: str
    endpoints: frozenset[Endpoint] = frozenset({"chat", "completions"})

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self._config = config
        # What it enforces of response_format (structured/support.py); vLLM's constraints: asked for in the prompt.
        self.structured_output, self.unenforced_keywords = local_structured_output(config)
        self.structured_extras: frozenset[str] = frozenset()
        self._generator: ThreadedGenerator | None = None
        self._adapter: ServedAdapter | None = None

    @property
    def adapter(self) -> ServedAdapter | None:
        """The LoRA adapter the loaded model serves with (`ServesAdapter`), None before loading or without one."""
        return self._adapter

    def load_model(self) -> TokenModel:
        """Load the weights (runs in a worker thread)."""
        raise NotImplementedError

    async def start(self) -> None:
        if self._generator is None:
            model = await asyncio.to_thread(self.load_model)
            self._adapter = getattr(model, "adapter", None)
            if self._adapter is not None:
                log.info("backend %s: LoRA adapter %s (sha256 %s…)", self.name, self._adapter.path,
                         self._adapter.sha256[:12])
            self._generator = ThreadedGenerator(self.name, model)

    async def close(self) -> None:
        # A generation still running keeps the model alive until its thread ends; then it is freed.
        self._generator = None

    async def health(self) -> bool:
        return self._generator is not None

    async def complete(self, call: BackendCall) -> Completion:
        return await self._loaded().complete(call)

    def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        return self._loaded().stream(call)

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        raise InvalidRequest(f"backend `{self.name}` serves chat and completions, not embeddings")

    def _loaded(self) -> ThreadedGenerator:
        if self._generator is None:
            raise BackendNotReady(f"backend `{self.name}` has not loaded its model yet")
        return self._generator
