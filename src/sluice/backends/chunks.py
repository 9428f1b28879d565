"""Builders for OpenAI-shaped chunks and answers, shared by adapters that generate rather than relay."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sluice.backends.tool_calls import ToolDelta
from sluice.backends.types import BackendCall, Chunk, Completion, Usage


def new_id(endpoint: str) -> str:
    return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex


def text_chunk(call: BackendCall, response_id: str, created: int, text: str,
               finish_reason: str | None = None) -> Chunk:
    """A chunk carrying `text` (may be empty with a finish reason) for choice 0."""
    if call.endpoint == "chat":
        delta: dict[str, Any] = {"content": text} if text else {}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = "text_completion"
    payload = {"id": response_id, "object": obj, "created": created, "model": call.upstream_model,
               "choices": [choice]}
    return Chunk(payload=payload, text=text, has_output=bool(text), finish_reason=finish_reason)


def tool_call_chunk(call: BackendCall, response_id: str, created: int, delta: ToolDelta) -> Chunk:
    """A chat chunk carrying one piece of a tool call (OpenAI's `delta.tool_calls`): output, but not text."""
    choice = {"index": 0, "delta": {"tool_calls": [delta.to_dict()]}, "logprobs": None, "finish_reason": None}
    payload = {"id": response_id, "object": "chat.completion.chunk", "created": created,
               "model": call.upstream_model, "choices": [choice]}
    return Chunk(payload=payload, has_output=True)


def role_chunk(call: BackendCall, response_id: str, created: int) -> Chunk:
    """The opening chat chunk announcing the assistant role (no output yet)."""
    payload = {"id": response_id, "object": "chat.completion.chunk", "created": created,
               "model": call.upstream_model,
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                            "logprobs": None, "finish_reason": None}]}
    return Chunk(payload=payload)


def usage_chunk(call: BackendCall, response_id: str, created: int, usage: Usage) -> Chunk:
    obj = "chat.completion.chunk" if call.endpoint == "chat" else "text_completion"
    payload = {"id": response_id, "object": obj, "created": created, "model": call.upstream_model,
               "choices": [], "usage": usage.to_dict()}
    return Chunk(payload=payload, usage=usage)


def completion_payload(call: BackendCall, response_id: str, created: int, text: str,
                       finish_reason: str | None, usage: Usage | None,
                       tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if call.endpoint == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = "text_completion"
    payload: dict[str, Any] = {"id": response_id, "object": obj, "created": created,
                               "model": call.upstream_model, "choices": [choice]}
    if usage is not None:
        payload["usage"] = usage.to_dict()
    return payload


async def collect(call: BackendCall, chunks: AsyncIterator[Chunk]) -> Completion:
    """Non-streaming is the stream collected (single-choice generators; tool-call deltas joined into calls)."""
    parts: list[str] = []
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_calls: dict[int, dict[str, Any]] = {}
    response_id, created = new_id(call.endpoint), int(time.time())
    async for chunk in chunks:
        parts.append(chunk.text)
        usage = chunk.usage or usage
        finish_reason = chunk.finish_reason or finish_reason
        response_id = chunk.payload.get("id", response_id)
        created = chunk.payload.get("created", created)
        if chunk.has_output and not chunk.text:
            _add_tool_calls(tool_calls, chunk.payload)
    text = "".join(parts)
    calls = [tool_calls[index] for index in sorted(tool_calls)]
    payload = completion_payload(call, response_id, created, text, finish_reason, usage, calls)
    return Completion(payload=payload, text=text, usage=usage, finish_reason=finish_reason)


def _add_tool_calls(calls: dict[int, dict[str, Any]], payload: dict[str, Any]) -> None:
    for choice in payload.get("choices") or ():
        for fragment in (choice.get("delta") or {}).get("tool_calls") or ():
            function = fragment.get("function") or {}
            if "id" in fragment:  # the opening piece: id, type, name
                calls[fragment["index"]] = {"id": fragment["id"], "type": "function",
                                            "function": {"name": function.get("name"), "arguments": ""}}
            opened = calls.get(fragment["index"])
            if opened is not None:
                opened["function"]["arguments"] += function.get("arguments") or ""
