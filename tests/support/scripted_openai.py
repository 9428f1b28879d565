"""A loopback OpenAI-compatible upstream that answers from a script: the n-th request gets the n-th text.

    upstream = ScriptedUpstream(["not json", '{"a": 1}'])    # later requests get the last text again
    with serve_app(upstream.app()) as url: ...
    upstream.requests[1]["messages"]                          # every JSON body received, oldest first
    upstream.headers[1]["x-sluice-cache"]                     # and its headers (lower-case names)

Chat and completions, whole or streamed (a chunk per whitespace-separated piece, a finishing chunk, a usage
chunk when asked); the n-th answer's finish reason is `finish_reasons[n]` ("stop" when not given).
Usage: prompt_tokens = `prompt_tokens`, completion_tokens = pieces of the text.
`GET /v1/models` lists one model owned by `owned_by` (what backends detect servers by).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class ScriptedUpstream:
    def __init__(self, texts: list[str], *, prompt_tokens: int = 10, owned_by: str = "someone",
                 finish_reasons: list[str] | None = None) -> None:
        self.texts = list(texts)
        self.finish_reasons = finish_reasons  # the n-th answer's (default "stop")
        self.prompt_tokens = prompt_tokens
        self.owned_by = owned_by
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._answer, methods=["POST"]),
                                 Route("/v1/completions", self._answer, methods=["POST"]),
                                 Route("/v1/models", self._models, methods=["GET"])])

    def _next_text(self) -> str:
        index = min(len(self.requests) - 1, len(self.texts) - 1)
        return self.texts[index]

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "up-model", "object": "model",
                                                          "owned_by": self.owned_by}]})

    async def _answer(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        chat = request.url.path.endswith("/chat/completions")
        text = self._next_text()
        pieces = re.findall(r"\s*\S+", text) or [""]
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": len(pieces),
                 "total_tokens": self.prompt_tokens + len(pieces)}
        finish = self.finish_reasons[len(self.requests) - 1] if self.finish_reasons else "stop"
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            return JSONResponse({"id": "x1", "object": "chat.completion" if chat else "text_completion",
                                 "created": 1, "model": body["model"], "choices": [choice], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._events(chat, pieces, usage if include_usage else None, finish),
                                 media_type="text/event-stream")

    async def _events(self, chat: bool, pieces: list[str], usage: dict[str, Any] | None,
                      finish: str) -> AsyncIterator[bytes]:
        head = {"id": "x1", "object": "chat.completion.chunk" if chat else "text_completion", "created": 1,
                "model": "up-model"}

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"

        if chat:
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in pieces:
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                         else {"index": 0, "text": piece, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": finish} if chat
                     else {"index": 0, "text": "", "finish_reason": finish}])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"
