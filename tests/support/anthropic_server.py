"""A loopback server speaking the Anthropic Messages API as documented, with fault modes for tests.

Faults are chosen by words in the last user turn's text:
  FAULT_<status>      answer that HTTP status with Anthropic's error body (429 adds `retry-after`)
  STREAM_ERROR        streaming: an `error` event after some text
  STREAM_ERROR_EARLY  streaming: an `error` event before any content block
  STREAM_DROP         streaming: drop the connection after some text
  STREAM_TRUNCATE     streaming: end cleanly but without `message_stop`
  REFUSE              stop_reason "refusal"
  weather             (with tools offered) answer with a `tool_use` block
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

API_KEY = "sk-ant-test"
VERSION = "2023-06-01"
INPUT_TOKENS = 12
CACHE_READ_TOKENS = 5
CACHE_WRITE_TOKENS = 3
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


@dataclass(slots=True, frozen=True)
class ReceivedRequest:
    headers: dict[str, str]
    body: dict[str, Any]


class BadRequest(Exception):
    """The request breaks a documented Messages API rule (answered as invalid_request_error)."""


class UnfinishedStreamingResponse(StreamingResponse):
    """Streams its body but never ends it: uvicorn then has to close the connection mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


class AnthropicServer:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    @property
    def last_body(self) -> dict[str, Any]:
        return self.requests[-1].body

    async def _messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(ReceivedRequest(dict(request.headers), body))
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "invalid x-api-key")
        if request.headers.get("anthropic-version") != VERSION:
            return _error(400, "anthropic-version: header is required")
        try:
            _validate(body)
        except BadRequest as exc:
            return _error(400, str(exc))
        prompt = _last_user_text(body["messages"])
        fault = re.search(r"FAULT_(\d{3})", prompt)
        if fault:
            status = int(fault.group(1))
            retry_after = {"retry-after": "7"} if status == 429 else None
            return _error(status, f"simulated {status}", headers=retry_after)
        message = _answer(body, prompt)
        if body.get("stream"):
            response_type = UnfinishedStreamingResponse if "STREAM_DROP" in prompt else StreamingResponse
            return response_type(_events(message, prompt), media_type="text/event-stream")
        return Response(orjson.dumps(message), media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _validate(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise BadRequest("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    tool_use_ids: set[str] = set()
    for position, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{position}.role: Input should be 'user' or 'assistant'")
        if position and messages[position - 1]["role"] == role:
            raise BadRequest("messages: roles must alternate between \"user\" and \"assistant\"")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            raise BadRequest(f"messages.{position}.content: must be a string or a non-empty list")
        _validate_blocks(position, role, content, tool_use_ids)
    if "system" in body and not isinstance(body["system"], str | list):
        raise BadRequest("system: Input should be a string or a list of text blocks")
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise BadRequest("stop_sequences: Input should be a list of strings")
    if not 0 <= body.get("temperature", 0) <= 1:
        raise BadRequest("temperature: range: 0..1")
    if set(body.get("metadata", {})) - {"user_id"}:
        raise BadRequest("metadata: only user_id is allowed")
    names = set()
    for tool in body.get("tools", []):
        if not tool.get("name") or (tool.get("input_schema") or {}).get("type") != "object":
            raise BadRequest("tools: each tool needs a name and an object input_schema")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            raise BadRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise BadRequest("tool_choice.name: no tool with that name")


def _validate_blocks(position: int, role: str, blocks: list[dict[str, Any]], tool_use_ids: set[str]) -> None:
    seen_other = False
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            if not block.get("text"):
                raise BadRequest(f"messages.{position}: text content blocks must be non-empty")
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") not in ("base64", "url"):
                raise BadRequest(f"messages.{position}: image source type must be base64 or url")
        elif kind == "tool_use" and role == "assistant":
            if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
                raise BadRequest(f"messages.{position}: tool_use needs id, name and an object input")
            tool_use_ids.add(block["id"])
        elif kind == "tool_result" and role == "user":
            if seen_other:
                raise BadRequest(f"messages.{position}: tool_result blocks must come first")
            if block.get("tool_use_id") not in tool_use_ids:
                raise BadRequest(f"messages.{position}: tool_result for an unknown tool_use_id")
            continue
        else:
            raise BadRequest(f"messages.{position}: {kind} blocks are not allowed in {role} turns")
        seen_other = True


def _text_of(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or ():
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return " ".join(parts)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    users = [message for message in messages if message["role"] == "user"]
    return _text_of(users[-1]["content"]) if users else ""


def _answer(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    """A deterministic reply: a tool call when asked about weather, else an echo; honours stops and limits."""
    content: list[dict[str, Any]] = []
    choice_type = (body.get("tool_choice") or {}).get("type", "auto")
    last_turn = body["messages"][-1]["content"]
    has_result = isinstance(last_turn, list) and any(b.get("type") == "tool_result" for b in last_turn)
    if body.get("tools") and choice_type != "none" and not has_result and (
            "weather" in prompt or choice_type in ("any", "tool")):
        name = body["tool_choice"]["name"] if choice_type == "tool" else body["tools"][0]["name"]
        content = [{"type": "text", "text": "Let me check."},
                   {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name,
                    "input": TOOL_INPUT}]
        stop_reason, stop_sequence = "tool_use", None
    else:
        reply = ("The tool said: " if has_result else "Echo: ") + prompt
        stop_reason, stop_sequence = ("refusal" if "REFUSE" in prompt else "end_turn"), None
        for stop in body.get("stop_sequences", []):
            if stop in reply:
                reply, stop_reason, stop_sequence = reply[:reply.index(stop)], "stop_sequence", stop
        words = _words(reply)
        if len(words) > body["max_tokens"]:
            words, stop_reason, stop_sequence = words[:body["max_tokens"]], "max_tokens", None
        content = [{"type": "text", "text": "".join(words)}]
    output_tokens = sum(len(_words(block.get("text", ""))) + (5 if block["type"] == "tool_use" else 0)
                        for block in content)
    return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "content": content,
            "model": body["model"], "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
                      "cache_read_input_tokens": CACHE_READ_TOKENS, "output_tokens": output_tokens}}


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _sse(event_type: str, data: dict[str, Any]) -> bytes:
    return f"event: {event_type}\ndata: ".encode() + orjson.dumps({"type": event_type, **data}) + b"\n\n"


async def _events(message: dict[str, Any], prompt: str) -> AsyncIterator[bytes]:
    """The documented flow: message_start, ping, per block start/deltas/stop, message_delta, message_stop."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    yield _sse("message_start", {"message": start})
    yield _sse("ping", {})
    if "STREAM_ERROR_EARLY" in prompt:
        yield _sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
        return
    sent_pieces = 0
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield _sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            pieces = [("text_delta", "text", word) for word in _words(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield _sse("content_block_start", {"index": index, "content_block": opening})
            arguments = orjson.dumps(block["input"]).decode()
            pieces = [("input_json_delta", "partial_json", "")]
            pieces += [("input_json_delta", "partial_json", arguments[start:start + 7])
                       for start in range(0, len(arguments), 7)]
        for delta_type, field, value in pieces:
            yield _sse("content_block_delta", {"index": index, "delta": {"type": delta_type, field: value}})
            sent_pieces += 1
            if sent_pieces == 2 and "STREAM_ERROR" in prompt:
                yield _sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            if sent_pieces == 2 and "STREAM_DROP" in prompt:
                return  # UnfinishedStreamingResponse leaves the body open; uvicorn drops the connection
        yield _sse("content_block_stop", {"index": index})
    yield _sse("message_delta", {"delta": {"stop_reason": message["stop_reason"],
                                           "stop_sequence": message["stop_sequence"]},
                                 "usage": {"output_tokens": message["usage"]["output_tokens"]}})
    if "STREAM_TRUNCATE" in prompt:
        return
    yield _sse("message_stop", {})
