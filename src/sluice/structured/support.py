"""What each backend enforces of `response_format`, and the request a backend that cannot enforce it gets.

A backend's `structured_output` says it (docs/structured-output.md#backends):

- `json_schema` — it decodes under the schema itself (OpenAI, vLLM, Ollama, the local GGUF runtime, the simulator,
  Anthropic through a forced tool): the request goes as sent;
- `json_object` — JSON mode only: a schema request goes as JSON mode, with the schema written into the prompt;
- `none` — no JSON support: `response_format` is taken off and the schema written into the prompt;
- `unknown` — an OpenAI-compatible server that was not recognised: the request goes as sent.

Whatever the backend, the gateway validates the answer (structured/stage.py); a keyword the backend's decoder does
not enforce is named in the verdict (`unenforced`) instead of being silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from sluice.backends import ChatCompletionRequest, ChatMessage, GenerationRequest, response_format_of
from sluice.errors import InvalidRequest
from sluice.structured.constraints import FIELDS, constraint_of

Support = Literal["json_schema", "json_object", "none", "unknown"]

_INSTRUCTION = ("Answer with one JSON value and nothing else: no code fences, no prose. It must match this JSON "
                "Schema:\n{schema}")
_OBJECT_INSTRUCTION = "Answer with one JSON object and nothing else: no code fences, no prose."


def support_of(backend: Any) -> Support:
    return getattr(backend, "structured_output", "unknown")


async def detect(backend: Any) -> None:
    """Let a backend whose support is detected (OpenAI-compatible, `auto`) find it out, once."""
    detect_once = getattr(backend, "detect_structured_output", None)
    if detect_once is not None:
        await detect_once()


def enforces(support: Support, kind: str) -> bool:
    """Whether a backend with this support decodes under a format of this kind (`json_object` | `json_schema`)."""
    return support == "json_schema" or (support == "json_object" and kind == "json_object")


def unenforced(schema: dict[str, Any] | None, backend: Any) -> list[str]:
    """The schema's keywords the backend's decoder is known to ignore (its `unenforced_keywords`), sorted."""
    ignored: frozenset[str] = getattr(backend, "unenforced_keywords", frozenset())
    if not schema or not ignored:
        return []
    found: set[str] = set()
    _keywords(schema, ignored, found)
    return sorted(found)


def extras_of(backend: Any) -> frozenset[str] | None:
    """The vLLM constraint kinds (`json`, `regex`, `choice`, `grammar`) a backend decodes under; None: not known
    (an unrecognised OpenAI-compatible server: the request goes as sent)."""
    return getattr(backend, "structured_extras", frozenset())


def constrains(request: GenerationRequest) -> bool:
    """Whether a request carries a `response_format` or a vLLM constraint (what `adapt` may have to rewrite)."""
    if response_format_of(request) is not None:
        return True
    extra = request.model_extra
    return bool(extra) and not FIELDS.isdisjoint(extra)  # type: ignore[arg-type]


def adapt(request: GenerationRequest, raw_body: dict[str, Any] | None,
          backend: Any) -> tuple[GenerationRequest, dict[str, Any] | None]:
    """The request a backend gets: as sent where it enforces the format or constraint (or is not known), else with
    what is wanted in the prompt and `response_format` lowered to what it takes (JSON mode, or nothing), a vLLM
    constraint taken off. A grammar on a backend that cannot take it is a 400 naming the backend."""
    response_format = response_format_of(request)
    if response_format is not None:
        support = support_of(backend)
        kind = response_format.get("type")
        if support in ("json_schema", "unknown") or kind not in ("json_object", "json_schema") or (
                support == "json_object" and kind == "json_object"):
            return request, raw_body
        schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        lowered = {"type": "json_object"} if support == "json_object" else None
        return _rewritten(request, raw_body, _instruction(schema), {"response_format": lowered})
    constraint = constraint_of(request.model_extra)
    extras = extras_of(backend)
    if constraint is None or extras is None or constraint.kind in extras:
        return request, raw_body
    if constraint.kind == "grammar":
        raise InvalidRequest(f"backend `{backend.name}` does not decode under a grammar: {constraint.param} needs a "
                             "server that does (vLLM)", param=constraint.param, code="unsupported_parameter")
    instruction = _instruction(constraint.value) if constraint.kind == "json" else constraint.describe()
    return _rewritten(request, raw_body, instruction, dict.fromkeys(FIELDS))


def _instruction(schema: dict[str, Any] | None) -> str:
    return _INSTRUCTION.format(schema=orjson.dumps(schema).decode()) if schema else _OBJECT_INSTRUCTION


def _rewritten(request: GenerationRequest, raw_body: dict[str, Any] | None, instruction: str,
               fields: dict[str, Any]) -> tuple[GenerationRequest, dict[str, Any] | None]:
    """The request with the instruction in its prompt and `fields` set (None: removed)."""
    update: dict[str, Any] = {}
    if isinstance(request, ChatCompletionRequest):
        update["messages"] = _with_instruction(request.messages, instruction)
    elif isinstance(request.prompt, str):
        update["prompt"] = f"{instruction}\n\n{request.prompt}"
    body = dict(raw_body) if raw_body is not None else None
    if body is not None:
        if "messages" in update:
            body["messages"] = [message.model_dump(exclude_none=True) for message in update["messages"]]
        elif "prompt" in update:
            body["prompt"] = update["prompt"]
        for name, value in fields.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
    if isinstance(request, ChatCompletionRequest) and "response_format" in fields:
        update["response_format"] = fields["response_format"]
    adapted = request.model_copy(update=update)
    extra = dict(adapted.model_extra or {})
    for name, value in fields.items():
        if name == "response_format" and isinstance(request, ChatCompletionRequest):
            continue
        if value is None:
            extra.pop(name, None)
        else:
            extra[name] = value
    object.__setattr__(adapted, "__pydantic_extra__", extra)
    return adapted, body


def _with_instruction(messages: list[ChatMessage], instruction: str) -> list[ChatMessage]:
    """The instruction in the system message (appended to a text one, or as a new first message)."""
    first = messages[0] if messages else None
    if first is not None and first.role in ("system", "developer") and isinstance(first.content, str):
        return [first.model_copy(update={"content": f"{first.content}\n\n{instruction}"}), *messages[1:]]
    return [ChatMessage(role="system", content=instruction), *messages]


_NAMED = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")  # keys are names
_DATA = ("enum", "const", "default", "examples")  # values are data, not schemas


def _keywords(node: Any, wanted: frozenset[str], found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _keywords(item, wanted, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in wanted:
                found.add(key)
            if key in _NAMED and isinstance(value, dict):
                for child in value.values():
                    _keywords(child, wanted, found)
            elif key not in _DATA:
                _keywords(value, wanted, found)


__all__ = ["Support", "adapt", "constrains", "detect", "enforces", "extras_of", "response_format_of", "support_of",
           "unenforced"]
