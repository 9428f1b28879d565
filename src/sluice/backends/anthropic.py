"""Adapter for the Anthropic Messages API: OpenAI chat in, Anthropic `POST /v1/messages` upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from sluice.backends._anthropic_stream import StreamTranslator
from sluice.backends._anthropic_translate import completion_from_message, messages_body
from sluice.backends._http import HTTPUpstream, json_object, parse_error
from sluice.backends.sse import iter_sse
from sluice.backends.types import BackendCall, Chunk, Completion, EmbeddingRequest, Embeddings, Endpoint
from sluice.config import AnthropicBackendConfig
from sluice.errors import InvalidRequest, UpstreamError, UpstreamStreamBroken, UpstreamUnavailable

_PATH = "/v1/messages"


class AnthropicBackend:
    type = "anthropic"
    endpoints: frozenset[Endpoint] = frozenset({"chat"})
    structured_output = "json_schema"  # through a forced tool (_anthropic_format.py)
    structured_extras: frozenset[str] = frozenset()  # vLLM's constraints: asked for in the prompt instead

    def __init__(self, name: str, config: AnthropicBackendConfig) -> None:
        self.name = name
        self._default_max_tokens = config.default_max_tokens
        headers = {**config.headers, "anthropic-version": config.anthropic_version}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        self._http = HTTPUpstream.from_config(name, config, headers)

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def health(self) -> bool:
        # Anthropic has no free health endpoint and a probe message spends tokens: a ready session is enough.
        await self._http.start()
        return True

    async def complete(self, call: BackendCall) -> Completion:
        body = messages_body(call, default_max_tokens=self._default_max_tokens, stream=False)
        async with self._http.post(_PATH, body, headers=call.extra_headers,
                                   error_parser=parse_error) as resp:
            message = json_object(await resp.read())
        return completion_from_message(call, message)

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        body = messages_body(call, default_max_tokens=self._default_max_tokens, stream=True)
        translator = StreamTranslator(call)
        started = False
        try:
            async with self._http.post(_PATH, body, headers=call.extra_headers,
                                       error_parser=parse_error) as resp:
                async for event in iter_sse(resp.content.iter_any()):
                    try:
                        data = orjson.loads(event.data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamUnavailable(f"upstream sent a malformed {event.event!r} event") from exc
                    for chunk in translator.feed(data):
                        started = started or chunk.has_output
                        yield chunk
                    if translator.done:
                        return
                raise UpstreamStreamBroken("upstream closed the stream before message_stop")
        except UpstreamStreamBroken:
            raise
        except UpstreamError as exc:
            if started:  # after output began the client already has a 200: this is a broken stream
                raise UpstreamStreamBroken(f"upstream stream failed: {exc.message}", code=exc.code) from exc
            raise

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        raise InvalidRequest("Anthropic has no embeddings API; route embeddings to another backend",
                             param="model", code="unsupported_endpoint")
