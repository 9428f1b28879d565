"""Anthropic Messages stream events -> OpenAI `chat.completion.chunk`s, one answer at a time."""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.backends._anthropic_format import output_tool
from sluice.backends._anthropic_translate import ERROR_STATUSES, finish_reason, usage_from
from sluice.backends.chunks import new_id, role_chunk, text_chunk, usage_chunk
from sluice.backends.types import BackendCall, Chunk
from sluice.errors import upstream_error_for_status


class StreamTranslator:
    """Feed each decoded event in order; `done` turns true at `message_stop`.

    An `error` event raises the `UpstreamError` its error type maps to; the caller decides whether that
    is a broken stream (output already sent) or an ordinary upstream failure.
    """

    def __init__(self, call: BackendCall) -> None:
        self._call = call
        self._response_id = new_id("chat")
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tool_indexes: dict[int, int] = {}  # Anthropic content-block index -> OpenAI tool_calls index
        self._output = output_tool(call.request)  # response_format's forced tool: its input is the answer
        self._output_block: int | None = None
        self._output_json: list[str] = []  # a wrapped schema's input, unwrapped when its block stops
        self.done = False

    def feed(self, event: dict[str, Any]) -> list[Chunk]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._response_id = message.get("id") or self._response_id
            self._merge_usage(message.get("usage"))
            return [role_chunk(self._call, self._response_id, self._created)]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "message_delta":
            self._merge_usage(event.get("usage"))
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            finish = "stop" if stop_reason == "tool_use" and self._output_block is not None else \
                finish_reason(stop_reason)
            return [self._text("", finish)] if finish else []
        if kind == "content_block_stop" and self._output is not None and self._output.wrapped and \
                event.get("index") == self._output_block:
            return [self._text(self._output.answer(orjson.loads("".join(self._output_json) or "{}")))]
        if kind == "message_stop":
            self.done = True
            usage = usage_from(self._usage)
            return [usage_chunk(self._call, self._response_id, self._created, usage)] if usage else []
        if kind == "error":
            error = event.get("error") or {}
            error_type = str(error.get("type") or "api_error")
            raise upstream_error_for_status(ERROR_STATUSES.get(error_type, 500),
                             f"upstream sent an error mid-stream: {error.get('message') or error_type}",
                             code=error_type)
        return []  # ping, content_block_stop, and event types added after this adapter was written

    def _block_start(self, index: int, block: dict[str, Any]) -> list[Chunk]:
        output = self._output
        if output is not None and block.get("type") == "tool_use" and block.get("name") == output.name:
            self._output_block = index
            return []
        if block.get("type") == "tool_use":
            tool_index = len(self._tool_indexes)
            self._tool_indexes[index] = tool_index
            return [self._tool_call({"index": tool_index, "id": block.get("id"), "type": "function",
                                     "function": {"name": block.get("name"), "arguments": ""}})]
        if block.get("type") == "text" and block.get("text") and output is None:
            return [self._text(block["text"])]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[Chunk]:
        if index == self._output_block:  # the output tool's input streams as the answer's text
            piece = delta.get("partial_json") or ""
            if self._output.wrapped:  # type: ignore[union-attr]
                self._output_json.append(piece)
                return []
            return [self._text(piece)] if piece else []
        if self._output is not None and delta.get("type") == "text_delta":
            return []  # with the output tool forced, text beside it is not the answer
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._text(delta["text"])]
        tool_index = self._tool_indexes.get(index)
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and tool_index is not None:
            return [self._tool_call({"index": tool_index, "function": {"arguments": delta["partial_json"]}})]
        return []  # thinking, signature and citation deltas have no OpenAI chat equivalent here

    def _text(self, text: str, finish: str | None = None) -> Chunk:
        return text_chunk(self._call, self._response_id, self._created, text, finish)

    def _tool_call(self, tool_call: dict[str, Any]) -> Chunk:
        payload = {"id": self._response_id, "object": "chat.completion.chunk", "created": self._created,
                   "model": self._call.upstream_model,
                   "choices": [{"index": 0, "delta": {"tool_calls": [tool_call]}, "logprobs": None,
                                "finish_reason": None}]}
        return Chunk(payload=payload, has_output=True)

    def _merge_usage(self, usage: dict[str, Any] | None) -> None:
        # message_delta usage is cumulative and may repeat input counts: later values win.
        for key, value in (usage or {}).items():
            if value is not None:
                self._usage[key] = value
