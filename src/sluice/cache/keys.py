"""Cache keys: the normalised request hashed for the exact cache, and the scope + text of a semantic lookup."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.backends import GenerationRequest

# Fields that change how an answer is delivered or attributed, never what it says.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user"})
# JSON has one number type: `0` and `0.0` must hash alike.
_FLOAT_PARAMS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty", "min_p",
                           "repetition_penalty"})


def request_body(request: GenerationRequest, raw_body: dict[str, Any] | None) -> dict[str, Any]:
    """The request as the client sent it (unknown params such as top_k or logit_bias included), normalised:
    delivery-only fields dropped, null values dropped (null means "not set")."""
    body = raw_body if raw_body is not None else request.model_dump(exclude_unset=True)
    normalised = {name: float(value) if name in _FLOAT_PARAMS and isinstance(value, int) else value
                  for name, value in body.items() if value is not None and name not in IGNORED_FIELDS}
    messages = normalised.get("messages")
    if isinstance(messages, list):
        normalised["messages"] = [_without_nulls(message) for message in messages]
    return normalised


def exact_key(endpoint: str, namespace: str, body: dict[str, Any]) -> str:
    """128-bit BLAKE2b of the canonical JSON (keys sorted at every level) of everything that shapes the answer."""
    return _digest([endpoint, namespace, body])


@dataclass(slots=True, frozen=True)
class SemanticQuery:
    """What a semantic lookup compares: `text` by meaning, everything else (`scope`) exactly."""

    scope: str
    text: str


def semantic_query(endpoint: str, namespace: str, body: dict[str, Any], *, max_user_turns: int,
                   ) -> SemanticQuery | None:
    """The last user message (chat) or the one prompt (completions) and the hash of all the rest; None when
    the request is not semantically cacheable (too many user turns, non-text content, several prompts)."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        if sum(1 for message in messages if isinstance(message, dict) and message.get("role") == "user") \
                > max_user_turns:
            return None
        text = _text_of(last.get("content"))
        if text is None:
            return None
        # Everything but the last user text must match exactly: system prompt, earlier turns, params, names.
        rest = {**body, "messages": [*messages[:-1], {k: v for k, v in last.items() if k != "content"}]}
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return None
        text = prompt
        rest = {name: value for name, value in body.items() if name != "prompt"}
    if not text.strip():
        return None
    return SemanticQuery(_digest([endpoint, namespace, rest]), text)


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in content):
        return "\n".join(part["text"] for part in content)
    return None  # images, audio, files: only the exact cache may answer these


def _without_nulls(message: Any) -> Any:
    if isinstance(message, dict):
        return {name: value for name, value in message.items() if value is not None}
    return message


def _digest(parts: list[Any]) -> str:
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()
