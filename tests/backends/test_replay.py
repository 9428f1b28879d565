"""Streams collected into answers and answers replayed as streams, both ways round."""

from __future__ import annotations

from typing import Any

from sluice.backends import StreamCollector, Usage, completion_from_payload, replay_chunks

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "up"}


def chunk(*choices: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": list(choices), **({"usage": usage} if usage else {})}


def delta(index: int, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish}


STREAM = [
    chunk(delta(0, role="assistant", content=""), delta(1, role="assistant", content="")),
    chunk(delta(0, content="Hel")),
    chunk(delta(1, tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "lookup", "arguments": ""}}])),
    chunk(delta(0, content="lo")),
    chunk(delta(1, tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}])),
    chunk(delta(1, tool_calls=[{"index": 0, "function": {"arguments": '"x"}'}}])),
    chunk(delta(0, finish="stop"), delta(1, finish="tool_calls")),
    chunk(usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}),
]


def collect(payloads: list[dict[str, Any]], endpoint: str = "chat", max_bytes: int = 1 << 20):  # type: ignore[no-untyped-def]
    collector = StreamCollector(endpoint, max_bytes)
    for payload in payloads:
        collector.add(payload)
    return collector.completion()


def test_stream_with_choices_and_tool_calls_collects_into_the_whole_answer() -> None:
    answer = collect(STREAM)
    assert answer is not None
    first, second = answer.payload["choices"]
    assert first["message"] == {"role": "assistant", "content": "Hello"} and first["finish_reason"] == "stop"
    assert second["message"]["content"] is None
    assert second["message"]["tool_calls"] == [{"id": "call_1", "type": "function",
                                                "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]
    assert answer.payload["object"] == "chat.completion" and answer.payload["id"] == "chatcmpl-1"
    assert answer.usage == Usage(3, 5) and answer.text == "Hello" and answer.finish_reason == "stop"


def test_replay_then_collect_gives_the_same_answer() -> None:
    answer = collect(STREAM)
    assert answer is not None
    chunks = replay_chunks(answer, "chat")
    again = collect([c.payload for c in chunks])
    assert again is not None and again.payload == answer.payload
    assert chunks[0].payload["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1].payload["choices"] == [] and chunks[-1].usage == Usage(3, 5)
    assert all(c.payload["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c.text for c in chunks) == "Hello"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop", "tool_calls"]


def test_completions_stream_round_trip() -> None:
    payloads = [{**HEAD, "object": "text_completion", "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                for piece in ("one ", "two")]
    payloads.append({**HEAD, "object": "text_completion", "choices": [{"index": 0, "text": "",
                                                                       "finish_reason": "stop"}]})
    answer = collect(payloads, "completions")
    assert answer is not None and answer.payload["choices"][0]["text"] == "one two"
    assert answer.payload["object"] == "text_completion" and answer.usage is None
    replayed = replay_chunks(answer, "completions")
    assert [c.text for c in replayed] == ["one two", ""] and replayed[-1].finish_reason == "stop"


def test_a_stream_too_large_to_keep_is_not_collected() -> None:
    assert collect(STREAM, max_bytes=4) is None


def test_answer_from_a_non_streamed_payload() -> None:
    payload = {"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    answer = completion_from_payload(payload, "chat")
    assert (answer.text, answer.finish_reason, answer.usage) == ("hi", "stop", Usage(1, 1))
    content = [c for c in replay_chunks(answer, "chat") if c.has_output]
    assert len(content) == 1 and content[0].payload["choices"][0]["delta"] == {"content": "hi"}
