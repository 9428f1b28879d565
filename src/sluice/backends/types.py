"""Normalised request, response and chunk types that every backend speaks (OpenAI shape at the edges)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Endpoint = Literal["chat", "completions", "embeddings"]


class _OpenAIBody(BaseModel):
    # Unknown fields pass through to OpenAI-compatible upstreams untouched.
    model_config = ConfigDict(extra="allow")


class ChatMessage(_OpenAIBody):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_OpenAIBody):
    include_usage: bool = False


class _GenerationParams(_OpenAIBody):
    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_GenerationParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_GenerationParams):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    suffix: str | None = None

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens


class EmbeddingRequest(_OpenAIBody):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(item, str) for item in self.input):
            return list(self.input)  # type: ignore[arg-type]
        raise ValueError("token-id input is only accepted by OpenAI-compatible upstreams")


GenerationRequest = ChatCompletionRequest | CompletionRequest


def response_format_of(request: GenerationRequest) -> dict[str, Any] | None:
    """The request's `response_format` (completions carry it as an extra field); None when it sets none."""
    value = (request.response_format if isinstance(request, ChatCompletionRequest)
             else (request.model_extra or {}).get("response_format"))
    return value if isinstance(value, dict) else None


@dataclass(slots=True, frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None  # prompt tokens read from the provider's prompt cache (billed lower)
    reasoning_tokens: int | None = None  # part of completion_tokens (billed as output)
    cache_write_tokens: int | None = None  # prompt tokens written to the prompt cache (Anthropic bills them higher)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens is not None:
            body["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens is not None:
            body["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return body

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not usage:
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        cached = prompt_details.get("cached_tokens")
        if cached is None:
            cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek reports cache hits at the top level
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(cached) if cached is not None else None,
            reasoning_tokens=completion_details.get("reasoning_tokens"),
        )


@dataclass(slots=True)
class Chunk:
    """One streamed event, already an OpenAI `chat.completion.chunk` / `text_completion` object.

    `text` is the generated text this chunk carries (all choices); `has_output` is true when it carries
    any generated output (text, tool-call arguments, refusal) — the arrivals TTFT and ITL are timed on.
    `usage` is set on the chunk that reports token usage (usually the last, with empty choices).
    `buffered` says the next chunk is already here (same network read): the relay writes them together.
    """

    payload: dict[str, Any]
    text: str = ""
    has_output: bool = False
    usage: Usage | None = None
    finish_reason: str | None = None
    buffered: bool = False

    def with_text(self, text: str, endpoint: str) -> Chunk:
        """This chunk carrying `text` instead: its first choice's delta content (chat) or text (completions)."""
        payload: dict[str, Any] = dict(self.payload)
        choices = [dict(choice) for choice in payload.get("choices") or ()]
        if choices:
            if endpoint == "chat":
                choices[0]["delta"] = {**(choices[0].get("delta") or {}), "content": text}
            else:
                choices[0]["text"] = text
        payload["choices"] = choices
        return Chunk(payload, text=text, has_output=bool(text), usage=self.usage, finish_reason=self.finish_reason,
                     buffered=self.buffered)


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) answer: an OpenAI `chat.completion` / `text_completion` object."""

    payload: dict[str, Any]
    text: str
    usage: Usage | None
    finish_reason: str | None = None

    def as_chunk(self) -> Chunk:
        """This answer as the one chunk a non-streamed request's stage chain carries (gateway/chain.py)."""
        return Chunk(self.payload, self.text, bool(self.text), self.usage, self.finish_reason)

    @classmethod
    def of_chunk(cls, chunk: Chunk) -> Completion:
        return cls(chunk.payload, chunk.text, chunk.usage, chunk.finish_reason)


@dataclass(slots=True)
class Embeddings:
    payload: dict[str, Any]
    usage: Usage | None

    def as_chunk(self) -> Chunk:
        return Chunk(self.payload, usage=self.usage)

    @classmethod
    def of_chunk(cls, chunk: Chunk) -> Embeddings:
        return cls(chunk.payload, chunk.usage)


class Whole:
    """A reply that is one whole (non-streamed) answer, as the stage chain carries it (gateway/chain.py).

    It iterates like any reply — one chunk, `answer.as_chunk()` — so a stage that wraps replies handles it
    without a special case; the chain's runner takes `answer` straight out of an unwrapped one.
    """

    __slots__ = ("_done", "answer")

    def __init__(self, answer: Completion | Embeddings) -> None:
        self.answer = answer
        self._done = False

    def __aiter__(self) -> Whole:
        return self

    async def __anext__(self) -> Chunk:
        if self._done:
            raise StopAsyncIteration
        self._done = True
        return self.answer.as_chunk()

    async def aclose(self) -> None:
        self._done = True


@dataclass(slots=True, frozen=True)
class BackendCall:
    """What the gateway asks one backend for."""

    endpoint: Endpoint
    request: ChatCompletionRequest | CompletionRequest
    upstream_model: str
    request_id: str
    extra_headers: dict[str, str] = field(default_factory=dict)
    # The client's JSON body as received (already validated into `request`); OpenAI-compatible upstreams get
    # it as sent, which keeps unknown fields and spares a model_dump per request.
    raw_body: dict[str, Any] | None = None
