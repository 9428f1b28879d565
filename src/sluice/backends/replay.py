"""A stream collected into one answer (to store, to check), an answer replayed as the stream it would have been
(the cache's hits, the structured-output stage's buffered answers)."""

from __future__ import annotations

from typing import Any

from sluice.backends.types import Chunk, Completion, Usage

_CHUNK_OBJECT = {"chat": "chat.completion.chunk", "completions": "text_completion"}
_ANSWER_OBJECT = {"chat": "chat.completion", "completions": "text_completion"}
_HEADER_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def completion_from_payload(payload: dict[str, Any], endpoint: str) -> Completion:
    choices = payload.get("choices") or [{}]
    first = choices[0]
    source = first.get("message") or {} if endpoint == "chat" else first
    text = (source.get("content") if endpoint == "chat" else source.get("text")) or ""
    return Completion(payload=payload, text=text, usage=Usage.from_openai(payload.get("usage")),
                      finish_reason=first.get("finish_reason"))


def replay_chunks(answer: Completion, endpoint: str) -> list[Chunk]:
    """The chunks an upstream would have streamed for this answer: per choice a role chunk (chat), one chunk with
    all its content (tool calls, refusal), a finish chunk; then a usage chunk. The relay frames them as usual."""
    payload = answer.payload
    head = {name: payload[name] for name in _HEADER_FIELDS if name in payload}
    head["object"] = _CHUNK_OBJECT[endpoint]
    chunks = []
    for choice in payload.get("choices") or ():
        index = choice.get("index", 0)
        if endpoint == "chat":
            message = choice.get("message") or {}
            chunks.append(Chunk(payload={**head, "choices": [_delta(index, {"role": "assistant", "content": ""})]}))
            delta = {name: value for name, value in message.items()
                     if name not in ("role", "content") and value is not None}
            if "tool_calls" in delta:
                delta["tool_calls"] = [{"index": position, **call} for position, call in enumerate(delta["tool_calls"])]
            text = message.get("content") or ""
            if text:
                delta["content"] = text
            if delta:
                body = _delta(index, delta)
                body["logprobs"] = choice.get("logprobs")
                chunks.append(Chunk(payload={**head, "choices": [body]}, text=text, has_output=True))
            finish = _delta(index, {}, choice.get("finish_reason"))
        else:
            text = choice.get("text") or ""
            if text:
                chunks.append(Chunk(payload={**head, "choices": [{"index": index, "text": text,
                                                                  "logprobs": choice.get("logprobs"),
                                                                  "finish_reason": None}]},
                                    text=text, has_output=True))
            finish = {"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")}
        chunks.append(Chunk(payload={**head, "choices": [finish]}, finish_reason=choice.get("finish_reason")))
    if answer.usage is not None:
        chunks.append(Chunk(payload={**head, "choices": [], "usage": payload.get("usage")}, usage=answer.usage))
    return chunks


def _delta(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


class StreamCollector:
    """Folds streamed chunk payloads into the non-streamed answer they add up to (all choices, tool calls).

    Gives up (`too_large`) past `max_bytes` of content, so a huge stream is relayed but not kept in memory.
    """

    def __init__(self, endpoint: str, max_bytes: int) -> None:
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.too_large = False
        self._size = 0
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None

    def add(self, payload: dict[str, Any]) -> None:
        if self.too_large:
            return
        if not self._head:
            self._head = {name: payload[name] for name in _HEADER_FIELDS if name in payload}
        if payload.get("usage"):
            self._usage = payload["usage"]
        for choice in payload.get("choices") or ():
            state = self._choices.setdefault(choice.get("index", 0), {"parts": {}, "tool_calls": {}})
            if choice.get("finish_reason") is not None:
                state["finish_reason"] = choice["finish_reason"]
            if choice.get("logprobs"):
                state.setdefault("logprobs", []).extend((choice["logprobs"] or {}).get("content") or ())
            if self.endpoint == "chat":
                self._add_delta(state, choice.get("delta") or {})
            elif choice.get("text"):
                self._append(state, "content", choice["text"])

    def _add_delta(self, state: dict[str, Any], delta: dict[str, Any]) -> None:
        for name, value in delta.items():
            if name == "tool_calls":
                for call in value or ():
                    self._add_tool_call(state["tool_calls"], call)
            elif name == "role":
                state["role"] = value
            elif isinstance(value, str) and value:
                self._append(state, name, value)  # content, refusal, reasoning_content

    def _add_tool_call(self, calls: dict[int, dict[str, Any]], fragment: dict[str, Any]) -> None:
        call = calls.setdefault(fragment.get("index", 0), {"function": {"name": "", "arguments": ""}})
        for name in ("id", "type"):
            if fragment.get(name):
                call[name] = fragment[name]
        function = fragment.get("function") or {}
        for name in ("name", "arguments"):
            if function.get(name):
                call["function"][name] += function[name]
                self._grow(len(function[name]))

    def _append(self, state: dict[str, Any], field: str, text: str) -> None:
        state["parts"].setdefault(field, []).append(text)
        self._grow(len(text))

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self.max_bytes:
            self.too_large = True
            self._choices.clear()

    def completion(self) -> Completion | None:
        """The collected answer, or None when nothing (or too much) was collected."""
        if self.too_large or not self._choices:
            return None
        choices = [self._choice(index, state) for index, state in sorted(self._choices.items())]
        payload: dict[str, Any] = {**self._head, "object": _ANSWER_OBJECT[self.endpoint], "choices": choices}
        if self._usage is not None:
            payload["usage"] = self._usage
        return completion_from_payload(payload, self.endpoint)

    def _choice(self, index: int, state: dict[str, Any]) -> dict[str, Any]:
        parts = {name: "".join(pieces) for name, pieces in state["parts"].items()}
        logprobs = {"content": state["logprobs"]} if state.get("logprobs") else None
        if self.endpoint != "chat":
            return {"index": index, "text": parts.get("content", ""), "logprobs": logprobs,
                    "finish_reason": state.get("finish_reason")}
        message: dict[str, Any] = {"role": state.get("role", "assistant"), "content": parts.pop("content", None)}
        message.update(parts)
        if state["tool_calls"]:
            message["tool_calls"] = [
                {"id": call.get("id"), "type": call.get("type", "function"), "function": call["function"]}
                for _, call in sorted(state["tool_calls"].items())]
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": state.get("finish_reason")}
