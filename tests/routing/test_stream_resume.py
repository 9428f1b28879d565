"""Resuming a stream cut after output: the filter on its own, then through a gateway over fake upstreams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluice.backends import ChatCompletionRequest, Chunk
from sluice.gateway.resume import Delivered, Resume, StreamDiverged, resumable
from tests.routing.e2e import config, records, sample, upstreams
from tests.support.gateway import run_gateway

WORDS = "alpha beta gamma delta epsilon zeta"


def chat_chunk(text: str | None, *, finish: str | None = None, role: bool = False) -> Chunk:
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {"content": text}
    payload = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return Chunk(payload, text=text or "", has_output=bool(text), finish_reason=finish)


def test_the_repeated_part_is_dropped_and_the_first_new_text_trimmed() -> None:
    resume = Resume("alpha beta ga", "chat")
    assert resume.admit(chat_chunk(None, role=True)) is None
    assert resume.admit(chat_chunk("alpha ")) is None
    assert resume.admit(chat_chunk("beta ")) is None
    trimmed = resume.admit(chat_chunk("gamma "))
    assert trimmed is not None and trimmed.text == "mma "
    assert trimmed.payload["choices"][0]["delta"]["content"] == "mma "
    later = chat_chunk("delta")
    assert resume.admit(later) is later  # caught up: everything passes unchanged
    end = chat_chunk(None, finish="stop")
    assert resume.admit(end) is end


def test_a_chunk_ending_exactly_at_the_cut_keeps_its_finish_reason() -> None:
    resume = Resume("alpha", "completions")
    payload = {"object": "text_completion", "choices": [{"index": 0, "text": "alpha", "finish_reason": "stop"}]}
    kept = resume.admit(Chunk(payload, text="alpha", has_output=True, finish_reason="stop"))
    assert kept is not None and kept.finish_reason == "stop" and kept.payload["choices"][0]["text"] == ""
    assert not kept.has_output


@pytest.mark.parametrize("chunks", [
    [chat_chunk("alpha "), chat_chunk("BETA ")],  # says something else
    [chat_chunk("alpha "), chat_chunk(None, finish="stop")],  # ends before repeating all of it
    [chat_chunk("alpha be", finish="length")],
])
def test_a_new_answer_that_differs_is_never_spliced_in(chunks: list[Chunk]) -> None:
    resume = Resume("alpha beta", "chat")
    with pytest.raises(StreamDiverged):
        for chunk in chunks:
            assert resume.admit(chunk) is None


def test_only_text_of_one_choice_and_allowed_requests_resume() -> None:
    delivered = Delivered()
    delivered.add(chat_chunk("alpha"))
    assert delivered.text_only
    tool = Chunk({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}, text="{", has_output=True)
    delivered.add(tool)
    assert not delivered.text_only
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    sampled = ChatCompletionRequest.model_validate(body)
    greedy = ChatCompletionRequest.model_validate({**body, "temperature": 0})
    seeded = ChatCompletionRequest.model_validate({**body, "temperature": 0.8, "seed": 4})
    several = ChatCompletionRequest.model_validate({**body, "temperature": 0, "n": 2})
    assert [resumable("deterministic", r) for r in (sampled, greedy, seeded, several)] == [False, True, True, False]
    assert resumable("always", sampled) and not resumable("off", greedy)


def stream_text(url: str, **body: Any) -> tuple[str, str | None]:
    """The streamed text and the error event's code, if the stream ended with one."""
    payload = {"model": "m", "messages": [{"role": "user", "content": WORDS}], "stream": True, **body}
    with httpx.stream("POST", url + "/v1/chat/completions", json=payload, timeout=30) as response:
        assert response.status_code == 200
        events = [orjson.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    errors = [e["error"].get("code") or e["error"]["type"] for e in events if "error" in e]
    return text, errors[0] if errors else None


def test_a_stream_cut_mid_answer_finishes_on_the_fallback(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        # `a` always drops its connection after three words (its breaker kept closed, so every request tries it).
        models = {"m": {"targets": [{"backend": "a", "model": "fault/drop_mid_stream:3"}], "fallbacks": ["spare"],
                        "circuit_breaker": {"enabled": False}},
                  "spare": {"targets": [{"backend": "b", "model": "up-model"}]}}
        with run_gateway(config(db, {"a": ups["a"][1], "b": ups["b"][1]}, models,
                                cache={"exact": {"enabled": False}})) as gw:
            outcomes = [stream_text(gw.url, temperature=0, stream_options={"include_usage": True})
                        for _ in range(4)]
            sampled = [stream_text(gw.url) for _ in range(4)]
            resumed = sample(gw, "sluice_stream_resumes_total", model="m", outcome="ok")
    assert all(outcome == (WORDS, None) for outcome in outcomes), outcomes
    assert all(outcome[0] == "alpha beta gamma" and outcome[1] for outcome in sampled)  # the cut stands, as an event
    assert resumed == 4
    rows = [r for r in records(db) if r.error_class is None]
    assert len(rows) == 4 and all(r.response_body == WORDS and r.target == "b" and r.attempts == 2 for r in rows)
    assert all(r.completion_tokens == 6 for r in rows)  # usage of the whole answer, from the replica that finished


def test_resume_streams_off_keeps_the_error_event(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        models = {"m": {"targets": [{"backend": "a", "model": "fault/drop_mid_stream:3"}],
                        "retry": {"resume_streams": "off"}}}
        with run_gateway(config(tmp_path / "log.db", {"a": ups["a"][1]}, models,
                                cache={"exact": {"enabled": False}})) as gw:
            text, error = stream_text(gw.url, temperature=0)
    assert text == "alpha beta gamma" and error is not None


def test_a_resumed_stream_that_ends_short_is_not_passed_off_as_whole(tmp_path: Path) -> None:
    with upstreams("a", "b") as ups:
        # The fallback ends its stream cleanly after two words: less than the three the client already has.
        models = {"m": {"targets": [{"backend": "a", "model": "fault/drop_mid_stream:3"}], "fallbacks": ["spare"]},
                  "spare": {"targets": [{"backend": "b", "model": "fault/no_done:2"}]}}
        with run_gateway(config(tmp_path / "log.db", {"a": ups["a"][1], "b": ups["b"][1]}, models,
                                cache={"exact": {"enabled": False}})) as gw:
            text, error = stream_text(gw.url, temperature=0)
            outcomes = {outcome: sample(gw, "sluice_stream_resumes_total", model="m", outcome=outcome)
                        for outcome in ("ok", "diverged", "failed")}
    assert text == "alpha beta gamma" and error is not None  # what was sent, then the error event
    assert outcomes["ok"] == 0 and outcomes["diverged"] + outcomes["failed"] == 1, outcomes
