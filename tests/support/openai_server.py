"""A loopback OpenAI-compatible upstream for tests: deterministic answers, recorded requests, injected faults.

    upstream = make_openai_upstream()                 # app-wide settings are keyword arguments
    with serve_app(upstream) as url:                  # tests/support/servers.py
        base_url = url + "/v1"                        # the API lives under /v1, as on OpenAI and vLLM
        ...
        upstream.requests[-1].body["stream_options"]  # every request received, oldest first

Endpoints (the OpenAI wire format, as OpenAI and vLLM speak it):
    POST /v1/chat/completions, POST /v1/completions   JSON, or SSE when "stream": true
    POST /v1/embeddings                               deterministic unit vectors (`dimensions`, base64 honoured)
    GET  /v1/models                                   the `models` given to the factory

Answers are deterministic; a "token" is a whitespace-separated word. The reply echoes the words of the
last user message (completions: of each prompt), cut at `max_completion_tokens` / `max_tokens`
(finish_reason "length", else "stop"); a prompt without words yields "token0 token1 …" up to the limit
(default `default_max_tokens`, finish_reason "length"). All `n` choices carry the same text. Usage counts
words: prompt_tokens = words of all messages (prompts), completion_tokens = pieces emitted over all choices.
With `tools` and `tool_choice` "required" or {"type": "function", "function": {"name": ...}} the answer is a
call of that function (the first tool for "required") with arguments `{"echo": "<reply text>"}` and
finish_reason "tool_calls"; the arguments stream in 8-character fragments, each counted as a token.
`stop`, `echo` and sampling parameters are accepted and ignored.

Streaming follows OpenAI: chat opens with a role delta per choice (`{"role": "assistant", "content": ""}`),
then one chunk per word and choice (the pieces concatenate to the whole text), a chunk per choice with an
empty delta and the finish_reason, then — only when `stream_options.include_usage` is true — a usage-only
chunk with `"choices": []` (all other chunks then carry `"usage": null`), and `data: [DONE]`.

Faults. A spec is `mode` or `mode:value`, several joined by commas (`slow_tokens:0.1,drop_mid_stream:3`),
taken from the first of these that is present:
  1. the request header `x-fault: <spec>`;
  2. a magic model name `fault/<spec>` (e.g. an upstream model named `fault/http_429`);
  3. the app-wide `upstream.fault` (settable any time); with `upstream.fault_times = k` it applies to the
     next k requests only, then the upstream is healthy again (retry and failover tests).

  mode              value (default)   what the upstream does
  http_500          -                 500 {"error": {"message", "type": "server_error", "param": null, "code": null}}
  http_503          -                 503 with an OpenAI error body
  http_429          retry-after (7)   429, code "rate_limit_exceeded", header `retry-after: <value>`
  http_400          -                 400, type "invalid_request_error", param "messages",
                                      code "context_length_exceeded"
  tgi_error         status (422)      a TGI / Ollama style body {"error": "...", "error_type": "validation"}
  slow_headers      seconds (5)       waits before the status line (gives up early if the client leaves)
  slow_tokens       seconds (0.05)    waits before every output chunk, or (without streaming) that long per
                                      generation step before the status line (app-wide: `token_delay_s`)
  drop_mid_stream   chunks (2)        after that many output chunks closes the TCP connection, leaving the
                                      chunked body unterminated (no [DONE]); without streaming, after half
                                      of a Content-Length'd JSON body
  error_mid_stream  chunks (2)        after that many output chunks sends `data: {"error": {...}}`, then [DONE]
  no_done           chunks (all)      after that many output chunks ends the body cleanly without [DONE]
  sse_quirks        -                 a `: keep-alive` comment before every event, CRLF line endings, and each
                                      event written in two pieces split mid-line
  no_usage          -                 never reports usage (ignores `stream_options`), like older servers

The mid-stream modes leave non-streaming answers alone (except drop_mid_stream, above). With `api_key=`
requests lacking `Authorization: Bearer <api_key>` get 401 `invalid_api_key`. An unknown fault mode gets
a 400 naming the known ones.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

FAULT_DEFAULTS: dict[str, float | None] = {
    "http_500": None, "http_503": None, "http_429": 7.0, "http_400": None, "tgi_error": 422.0,
    "slow_headers": 5.0, "slow_tokens": 0.05, "drop_mid_stream": 2.0, "error_mid_stream": 2.0,
    "no_done": None, "sse_quirks": None, "no_usage": None,
}
_MID_STREAM_MODES = ("drop_mid_stream", "error_mid_stream", "no_done")
_ARGUMENT_FRAGMENT_CHARS = 8
# The chunked terminator trails [DONE] in a write of its own, as from a server whose generator ends after
# yielding [DONE]; the gap makes "the client read the body to its end" observable (connection pooling).
_TERMINATOR_GAP_S = 0.002

Faults = dict[str, float | None]


def parse_faults(spec: str) -> Faults:
    """`"slow_tokens:0.1,drop_mid_stream:3"` -> {"slow_tokens": 0.1, "drop_mid_stream": 3.0}."""
    faults: Faults = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        mode, _, value = item.partition(":")
        if mode not in FAULT_DEFAULTS:
            raise ValueError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_DEFAULTS)}")
        faults[mode] = float(value) if value else FAULT_DEFAULTS[mode]
    return faults


@dataclass(slots=True, frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body; {} for a GET, None for a body that is not JSON
    client_port: int | None  # the client's TCP port: equal ports mean a reused (pooled) connection


class OpenAIUpstream:
    """The ASGI app (serve it with `serve_app`) and what it recorded; build it with `make_openai_upstream`."""

    def __init__(self, *, models: Sequence[str], fault: str | None, fault_times: int | None,
                 token_delay_s: float, default_max_tokens: int, embedding_dim: int,
                 api_key: str | None) -> None:
        parse_faults(fault or "")  # fail at construction, not on the first request
        self.models = list(models)
        self.fault = fault
        self.fault_times = fault_times
        self.token_delay_s = token_delay_s
        self.default_max_tokens = default_max_tokens
        self.embedding_dim = embedding_dim
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ],
            exception_handlers={_Refusal: _refusal_response},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    def reset(self) -> None:
        """Forget the recorded requests and the app-wide fault (between tests that share one server)."""
        self.requests.clear()
        self.fault, self.fault_times = None, None

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies received on `path` (e.g. "/v1/chat/completions"), oldest first."""
        return [recorded.body for recorded in self.requests if recorded.path == path]

    async def _admit(self, request: Request) -> tuple[dict[str, Any], Faults]:
        """Record the request, then apply auth and the faults that answer before any body is produced."""
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        port = request.client.port if request.client else None
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body, port))
        if not isinstance(body, dict):
            raise _Refusal(_openai_error(400, "We could not parse the JSON body of your request.",
                                         "invalid_request_error"))
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise _Refusal(_openai_error(401, "Incorrect API key provided.", "invalid_request_error",
                                         code="invalid_api_key"))
        try:
            faults = parse_faults(self._fault_spec(request, body))
        except ValueError as exc:
            raise _Refusal(_openai_error(400, f"fake upstream: {exc}", "invalid_request_error")) from exc
        if faults.get("slow_headers"):
            async with _DisconnectWatch(request.receive) as watch:
                await watch.pause(float(faults["slow_headers"] or 0))
        refusal = _fault_error(faults)
        if refusal is not None:
            raise _Refusal(refusal)
        return body, faults

    def _fault_spec(self, request: Request, body: dict[str, Any]) -> str:
        if "x-fault" in request.headers:
            return request.headers["x-fault"]
        model = body.get("model")
        if isinstance(model, str) and model.startswith("fault/"):
            return model.removeprefix("fault/")
        if self.fault and (self.fault_times is None or self.fault_times > 0):
            if self.fault_times is not None:
                self.fault_times -= 1
            return self.fault
        return ""

    async def _chat(self, request: Request) -> ASGIApp:
        body, faults = await self._admit(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _Refusal(_openai_error(400, "'messages' must be a non-empty array of objects.",
                                         "invalid_request_error", param="messages"))
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        words, finish_reason = self._reply(_text_of(last_user.get("content")).split(),
                                           body.get("max_completion_tokens") or body.get("max_tokens"))
        tool_name = _forced_tool(body)
        if tool_name is None:
            pieces = _spaced(words)
        else:
            arguments = orjson.dumps({"echo": " ".join(words)}).decode()
            pieces = [arguments[i:i + _ARGUMENT_FRAGMENT_CHARS]
                      for i in range(0, len(arguments), _ARGUMENT_FRAGMENT_CHARS)]
            finish_reason = "tool_calls"
        choices = [_Choice(i, pieces, finish_reason, tool_name) for i in range(int(body.get("n") or 1))]
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages)
        return await self._respond(request, _Answer("chat", body, choices, prompt_tokens), faults)

    async def _completions(self, request: Request) -> ASGIApp:
        body, faults = await self._admit(request)
        prompts = _inputs(body.get("prompt"))
        if not prompts:
            raise _Refusal(_openai_error(400, "'prompt' is required.", "invalid_request_error",
                                         param="prompt"))
        n = int(body.get("n") or 1)
        choices: list[_Choice] = []
        for prompt_index, prompt in enumerate(prompts):
            words = prompt.split() if isinstance(prompt, str) else []  # token ids have no words to echo
            reply, finish_reason = self._reply(words, body.get("max_tokens"))
            choices += [_Choice(prompt_index * n + i, _spaced(reply), finish_reason) for i in range(n)]
        prompt_tokens = sum(_token_count(prompt) for prompt in prompts)
        return await self._respond(request, _Answer("completions", body, choices, prompt_tokens), faults)

    async def _embeddings(self, request: Request) -> ASGIApp:
        body, faults = await self._admit(request)
        items = _inputs(body.get("input"))
        if not items:
            raise _Refusal(_openai_error(400, "'input' must be a non-empty string or array.",
                                         "invalid_request_error", param="input"))
        dimensions = int(body.get("dimensions") or self.embedding_dim)
        data: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            vector = _unit_vector(orjson.dumps(item), dimensions)
            embedding: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_token_count(item) for item in items)
        payload = {"object": "list", "data": data, "model": body.get("model"),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return _whole_body(payload, faults)

    async def _models(self, request: Request) -> ASGIApp:
        await self._admit(request)
        return JSONResponse({"object": "list", "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "sluice-tests"} for model in self.models
        ]})

    def _reply(self, words: list[str], limit: int | None) -> tuple[list[str], str]:
        if not words:
            return [f"token{i}" for i in range(limit or self.default_max_tokens)], "length"
        if limit is not None and limit < len(words):
            return words[:limit], "length"
        return words, "stop"

    async def _respond(self, request: Request, answer: _Answer, faults: Faults) -> ASGIApp:
        token_delay_s = float(faults.get("slow_tokens") or self.token_delay_s)
        if answer.request.get("stream"):
            include_usage = bool((answer.request.get("stream_options") or {}).get("include_usage"))
            include_usage = include_usage and "no_usage" not in faults
            return _SSEStream(answer.chunks(include_usage), faults, token_delay_s)
        if token_delay_s:  # a whole answer is sent once its last token is generated
            async with _DisconnectWatch(request.receive) as watch:
                await watch.pause(token_delay_s * answer.steps)
        whole = answer.whole()
        if "no_usage" in faults:
            del whole["usage"]
        return _whole_body(whole, faults)


def make_openai_upstream(*, models: Sequence[str] = ("fake-model",), fault: str | None = None,
                         fault_times: int | None = None, token_delay_s: float = 0.0,
                         default_max_tokens: int = 16, embedding_dim: int = 8,
                         api_key: str | None = None) -> OpenAIUpstream:
    """A fresh fake upstream; see the module docstring for its answers and fault modes."""
    logging.getLogger("uvicorn.error").addFilter(_hide_deliberate_drops)  # idempotent
    return OpenAIUpstream(models=models, fault=fault, fault_times=fault_times, token_delay_s=token_delay_s,
                          default_max_tokens=default_max_tokens, embedding_dim=embedding_dim, api_key=api_key)


@dataclass(slots=True, frozen=True)
class _Choice:
    index: int
    pieces: list[str]  # text deltas (or tool-call argument fragments) that concatenate to the output
    finish_reason: str
    tool_name: str | None = None


@dataclass(slots=True, frozen=True)
class _Answer:
    endpoint: str  # "chat" | "completions"
    request: dict[str, Any]
    choices: list[_Choice]
    prompt_tokens: int

    @property
    def steps(self) -> int:
        """Generation steps: the longest choice's piece count."""
        return max(len(choice.pieces) for choice in self.choices)

    @property
    def usage(self) -> dict[str, int]:
        completion_tokens = sum(len(choice.pieces) for choice in self.choices)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def whole(self) -> dict[str, Any]:
        if self.endpoint == "chat":
            choices = [{"index": c.index, "message": _message(c), "logprobs": None,
                        "finish_reason": c.finish_reason} for c in self.choices]
        else:
            choices = [{"index": c.index, "text": "".join(c.pieces), "logprobs": None,
                        "finish_reason": c.finish_reason} for c in self.choices]
        return {**self._envelope(stream=False), "choices": choices, "usage": self.usage}

    def chunks(self, include_usage: bool) -> list[tuple[dict[str, Any], bool]]:
        """The stream's chunk objects in order, each with whether it carries output."""
        chat = self.endpoint == "chat"
        events: list[tuple[dict[str, Any], bool]] = []
        if chat:
            events += [({"index": c.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                         "finish_reason": None}, False) for c in self.choices]
        for step in range(self.steps):
            events += [(_piece(c, step, chat), True) for c in self.choices if step < len(c.pieces)]
        for c in self.choices:
            end: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
            events.append(({"index": c.index, **end, "logprobs": None, "finish_reason": c.finish_reason}, False))
        envelope = self._envelope(stream=True)
        if include_usage:
            envelope["usage"] = None
        framed = [({**envelope, "choices": [choice]}, has_output) for choice, has_output in events]
        if include_usage:
            framed.append(({**envelope, "choices": [], "usage": self.usage}, False))
        return framed

    def _envelope(self, *, stream: bool) -> dict[str, Any]:
        chat = self.endpoint == "chat"
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat else "text_completion"
        return {"id": ("chatcmpl-" if chat else "cmpl-") + "fake", "object": kind, "created": int(time.time()),
                "model": self.request.get("model")}


def _message(choice: _Choice) -> dict[str, Any]:
    if choice.tool_name is None:
        return {"role": "assistant", "content": "".join(choice.pieces)}
    call = {"id": f"call_{choice.index}", "type": "function",
            "function": {"name": choice.tool_name, "arguments": "".join(choice.pieces)}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _piece(choice: _Choice, step: int, chat: bool) -> dict[str, Any]:
    piece = choice.pieces[step]
    if not chat:
        return {"index": choice.index, "text": piece, "logprobs": None, "finish_reason": None}
    if choice.tool_name is None:
        delta: dict[str, Any] = {"content": piece}
    elif step == 0:
        delta = {"tool_calls": [{"index": 0, "id": f"call_{choice.index}", "type": "function",
                                 "function": {"name": choice.tool_name, "arguments": piece}}]}
    else:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
    return {"index": choice.index, "delta": delta, "logprobs": None, "finish_reason": None}


class _DropConnection(Exception):
    """Raised after a partial body: uvicorn then closes the connection mid-response, as a crash would."""


def _hide_deliberate_drops(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


class _DisconnectWatch:
    """Reads `receive` in the background so pauses end as soon as the client goes away."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _DisconnectWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds`; False (early) when the client has disconnected."""
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except TimeoutError:
            return True
        return False


class _SSEStream:
    """Writes chunk objects as `text/event-stream` with the stream faults applied (an ASGI app)."""

    def __init__(self, events: list[tuple[dict[str, Any], bool]], faults: Faults, token_delay_s: float) -> None:
        self._events = events
        self._token_delay_s = token_delay_s
        self._quirks = "sse_quirks" in faults
        self._fault = next((mode for mode in _MID_STREAM_MODES if mode in faults), None)
        after = faults.get(self._fault) if self._fault else None
        self._fault_after = math.inf if after is None else after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with _DisconnectWatch(receive) as watch:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]})
            outputs_sent = 0
            for payload, has_output in self._events:
                if has_output:
                    if outputs_sent >= self._fault_after:
                        break
                    if self._token_delay_s and not await watch.pause(self._token_delay_s):
                        return  # the client left; uvicorn ignores further sends anyway
                    outputs_sent += 1
                await self._event(send, b"data: " + orjson.dumps(payload))
            if self._fault == "drop_mid_stream":
                raise _DropConnection
            if self._fault == "error_mid_stream":
                error = {"message": "The server had an error while processing your request.",
                         "type": "server_error", "param": None, "code": None}
                await self._event(send, b"data: " + orjson.dumps({"error": error}))
            if self._fault != "no_done":
                await self._event(send, b"data: [DONE]")
                await asyncio.sleep(_TERMINATOR_GAP_S)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _event(self, send: Send, line: bytes) -> None:
        if not self._quirks:
            await send({"type": "http.response.body", "body": line + b"\n\n", "more_body": True})
            return
        frame = b": keep-alive\r\n\r\n" + line + b"\r\n\r\n"
        middle = len(frame) // 2
        await send({"type": "http.response.body", "body": frame[:middle], "more_body": True})
        await asyncio.sleep(0.001)  # let the two halves leave as separate writes
        await send({"type": "http.response.body", "body": frame[middle:], "more_body": True})


class _PartialBody:
    """Declares the whole body's Content-Length, sends half of it, then drops the connection."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]})
        await send({"type": "http.response.body", "body": self._body[:len(self._body) // 2], "more_body": True})
        raise _DropConnection


class _Refusal(Exception):
    """Ends a route early with `response` (an error the fake upstream was asked to give)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _refusal_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refusal)
    return exc.response


def _openai_error(status: int, message: str, error_type: str, *, param: str | None = None,
                  code: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _fault_error(faults: Faults) -> Response | None:
    if "http_500" in faults:
        return _openai_error(500, "The server had an error while processing your request. Sorry about that!",
                             "server_error")
    if "http_503" in faults:
        return _openai_error(503, "The server is overloaded or not ready yet.", "server_error")
    if "http_429" in faults:
        retry_after_s = faults["http_429"] or 0
        return _openai_error(429, "Rate limit reached for requests. Please try again later.", "requests",
                             code="rate_limit_exceeded", headers={"retry-after": f"{retry_after_s:g}"})
    if "http_400" in faults:
        return _openai_error(400, "This model's maximum context length is 4096 tokens. However, your "
                             "messages resulted in 5000 tokens. Please reduce the length of the messages.",
                             "invalid_request_error", param="messages", code="context_length_exceeded")
    if "tgi_error" in faults:
        return JSONResponse({"error": "Input validation error: `inputs` must have less than 4096 tokens.",
                             "error_type": "validation"}, status_code=int(faults["tgi_error"] or 422))
    return None


def _whole_body(payload: dict[str, Any], faults: Faults) -> ASGIApp:
    body = orjson.dumps(payload)
    if "drop_mid_stream" in faults:
        return _PartialBody(body)
    return Response(body, media_type="application/json")


def _text_of(content: Any) -> str:
    """The text of a message `content`: a string, or the text parts of a content-part array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _spaced(words: list[str]) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _forced_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    if choice == "required" and tools:
        return (tools[0].get("function") or {}).get("name")
    return None


def _inputs(value: Any) -> list[str | list[int]]:
    """A `prompt` or embeddings `input` (a string, token ids, or an array of either) as a list of items."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(i, int) for i in value)):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str | list)]
    return []


def _token_count(item: str | list[int]) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


def _unit_vector(seed: bytes, dimensions: int) -> list[float]:
    raw = [byte - 127.5 for byte in hashlib.shake_256(seed).digest(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]
