"""Adapter for OpenAI-compatible servers: vLLM, TGI, Ollama, llama.cpp server, OpenAI, Together, Groq."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import urlsplit

from sluice.backends._http import HTTPUpstream, error_message, json_object, parse_error
from sluice.backends.sse import iter_sse
from sluice.backends.types import (
    BackendCall,
    Chunk,
    Completion,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    Usage,
)
from sluice.config import OpenAIBackendConfig
from sluice.errors import UpstreamError, UpstreamStreamBroken

log = logging.getLogger("sluice.backends")
Support = Literal["json_schema", "json_object", "none", "unknown"]  # as structured/support.py reads it

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
# Keywords OpenAI's strict mode does not support (its structured-output docs list the supported ones).
_OPENAI_UNSUPPORTED = frozenset({"allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
                                 "patternProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
                                 "minProperties", "maxProperties", "contains", "uniqueItems"})
_VLLM_EXTRAS = frozenset({"json", "regex", "choice", "grammar"})
# Servers that decode under a JSON schema, by the `owned_by` of their /models entries (structured/support.py).
_ENFORCING_OWNERS = frozenset({"vllm", "openai", "system", "openai-internal", "library", "ollama", "llamacpp",
                               "sluice-simulator"})


class OpenAICompatBackend:
    type = "openai"
    endpoints: frozenset[Endpoint] = frozenset({"chat", "completions", "embeddings"})

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name = name
        headers = dict(config.headers)
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        self._http = HTTPUpstream.from_config(name, config, headers)
        self._detect = config.structured_output == "auto"
        # What it enforces of response_format; `auto` is found out on first need (`unknown` until then).
        self.structured_output: Support = "unknown" if self._detect else config.structured_output  # type: ignore[assignment]
        self.unenforced_keywords: frozenset[str] = frozenset()  # what its decoder ignores, where known
        # vLLM's constraints (structured_outputs / guided_*) it takes; None: not known, sent as they come.
        self.structured_extras: frozenset[str] | None = None if config.structured_output in ("auto", "json_schema") \
            else frozenset()
        if urlsplit(config.base_url).hostname == "api.openai.com":
            self.unenforced_keywords = _OPENAI_UNSUPPORTED
            self.structured_extras = frozenset()  # OpenAI takes none of vLLM's extras
            if self._detect:
                self.structured_output, self._detect = "json_schema", False

    async def start(self) -> None:
        await self._http.start()

    async def detect_structured_output(self) -> None:
        """Find out what it enforces, once, when the first request with a response_format comes (`auto`):
        `json_schema` for servers known to decode under a schema (by their /models' `owned_by`), else `unknown`
        — the request goes as sent and the gateway validates the answer (docs/structured-output.md)."""
        if not self._detect:
            return
        self._detect = False
        models = await self._http.get_json("/models", timeout_s=3.0)
        owners = {str(entry.get("owned_by", "")).lower() for entry in (models or {}).get("data") or ()
                  if isinstance(entry, dict)} if isinstance(models, dict) else set()
        if owners & _ENFORCING_OWNERS:
            self.structured_output = "json_schema"
            self.structured_extras = _VLLM_EXTRAS if "vllm" in owners else frozenset()
            return
        log.info("backend %s: no structured-output support recognised (owned_by: %s); answers to response_format "
                 "are validated by the gateway — set structured_output to say what it enforces", self.name,
                 ", ".join(sorted(owners)) or "unknown")

    async def close(self) -> None:
        await self._http.close()

    async def health(self) -> bool:
        return await self._http.get_ok("/models")

    async def complete(self, call: BackendCall) -> Completion:
        body = _upstream_body(call, stream=False)
        async with self._http.post(_PATHS[call.endpoint], body, headers=call.extra_headers,
                                   error_parser=parse_error) as resp:
            payload = json_object(await resp.read())
        text, finish_reason = _choice0(call.endpoint, payload)
        return Completion(payload=payload, text=text, usage=Usage.from_openai(payload.get("usage")),
                          finish_reason=finish_reason)

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        body = _upstream_body(call, stream=True)
        started = False
        try:
            async with self._http.post(_PATHS[call.endpoint], body, headers=call.extra_headers,
                                       error_parser=parse_error) as resp:
                # Raw blocks, not aiohttp's readline: fewer awaits per event and no 512 KiB line limit.
                async for event in iter_sse(resp.content.iter_any()):
                    if event.data == "[DONE]":
                        return
                    payload = json_object(event.data)
                    if "error" in payload and "choices" not in payload:
                        message, code, _ = error_message(event.data.encode())
                        raise UpstreamStreamBroken(f"upstream sent an error mid-stream: {message}", code=code)
                    chunk = _to_chunk(call.endpoint, payload)
                    chunk.buffered = event.more_buffered
                    started = started or chunk.has_output
                    yield chunk
                raise UpstreamStreamBroken("upstream closed the stream before [DONE]")
        except UpstreamStreamBroken:
            raise
        except UpstreamError as exc:
            if started:  # after output began the client already has a 200: this is a broken stream
                raise UpstreamStreamBroken(f"upstream stream failed: {exc.message}", code=exc.code) from exc
            raise

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        body = request.model_dump(exclude_unset=True)
        body["model"] = upstream_model
        async with self._http.post("/embeddings", body, error_parser=parse_error) as resp:
            payload = json_object(await resp.read())
        usage = payload.get("usage") or {}
        return Embeddings(payload=payload, usage=Usage(int(usage.get("prompt_tokens") or 0), 0)
                          if usage else None)


def _upstream_body(call: BackendCall, *, stream: bool) -> dict[str, Any]:
    body = dict(call.raw_body) if call.raw_body is not None else call.request.model_dump(exclude_unset=True)
    body["model"] = call.upstream_model
    body["stream"] = stream
    if stream:
        # Always ask for usage so token counts come from the upstream, not our estimate.
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    else:
        body.pop("stream_options", None)
    return body


def _to_chunk(endpoint: Endpoint, payload: dict[str, Any]) -> Chunk:
    text_parts: list[str] = []
    has_output = False
    finish_reason = None
    for choice in payload.get("choices") or ():
        if endpoint == "chat":
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                text_parts.append(content)
                has_output = True
            if delta.get("tool_calls") or delta.get("refusal") or delta.get("reasoning_content"):
                has_output = True
        else:
            text = choice.get("text")
            if text:
                text_parts.append(text)
                has_output = True
        finish_reason = choice.get("finish_reason") or finish_reason
    return Chunk(payload=payload, text="".join(text_parts), has_output=has_output,
                 usage=Usage.from_openai(payload.get("usage")), finish_reason=finish_reason)


def _choice0(endpoint: Endpoint, payload: dict[str, Any]) -> tuple[str, str | None]:
    choices = payload.get("choices") or [{}]
    first = choices[0]
    if endpoint == "chat":
        return (first.get("message") or {}).get("content") or "", first.get("finish_reason")
    return first.get("text") or "", first.get("finish_reason")
