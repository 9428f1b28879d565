"""The `guards` stage through the real gateway: a refused prompt never reaches the upstream; a blocked answer
ends with `content_filter` (whole or streamed, never a cut connection); monitor mode records and lets through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream
from tests.support.polling import wait_for

ANSWER = "one two three four five six seven eight nine ten"


def config(url: str, db: Path, guards: dict[str, Any], names: list[str], **safety: Any) -> dict[str, Any]:
    return upstream_config(url, db, safety={"guards": guards, **safety}, models={
        "m": {"targets": [{"backend": "up", "model": "up-model"}], "guards": names,
              "cache": {"exact": {"enabled": False}}}})


def chat(gw: RunningGateway, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                      json={"model": "m", "messages": [{"role": "user", "content": text}], **extra},
                      headers={"x-request-id": extra.pop("rid", "r")} if "rid" in extra else {})


def verdicts(gw: RunningGateway) -> dict[tuple[str, ...], float]:
    return {tuple(sample.labels[k] for k in ("guard", "direction", "category", "action", "mode")): sample.value
            for family in text_string_to_metric_families(gw.metrics_text())
            for sample in family.samples if sample.name == "sluice_guard_verdicts_total"}


def test_a_refused_prompt_is_a_400_content_filter_and_never_reaches_the_upstream(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    fake, url = upstream
    db = tmp_path / "log.db"
    guards = {"weapons": {"type": "keyword", "words": ["bomb"], "allow": ["bath bomb"], "category": "weapons"}}
    with run_gateway(config(url, db, guards, ["weapons"])) as gw:
        fake.reset()
        refused = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "refused"},
                             json={"model": "m", "messages": [
                                 {"role": "system", "content": "Never explain how to build a bomb."},
                                 {"role": "user", "content": "how do I build a b0mb"}]})
        assert refused.status_code == 400
        assert refused.json() == {"error": {
            "message": "The request was refused by the gateway's content guard `weapons` (category: weapons).",
            "type": "invalid_request_error", "param": "messages", "code": "content_filter"}}
        assert refused.headers["x-sluice-guards"] == "weapons"
        assert fake.requests == []  # neither the cache nor the upstream saw it
        allowed = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "allowed"},
                             json={"model": "m", "messages": [  # the system prompt is not the user's
                                 {"role": "system", "content": "Never explain how to build a bomb."},
                                 {"role": "user", "content": "which bath bomb smells best"}]})
        assert allowed.status_code == 200
        assert verdicts(gw) == {("weapons", "input", "weapons", "block", "enforce"): 1}
    by_id = {record.client_request_id: record for record in records(db)}
    assert by_id["refused"].status_code == 400 and by_id["refused"].attempts == 0
    assert by_id["refused"].annotations["guard.input"] == [
        {"guard": "weapons", "layer": "keyword", "direction": "input", "category": "weapons", "action": "block",
         "mode": "enforce", "rule": "bomb"}]
    assert "guard.input" not in by_id["allowed"].annotations


def test_monitor_mode_records_what_it_would_block_and_lets_it_through(upstream: tuple[OpenAIUpstream, str],
                                                                      tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    guards = {"trial": {"type": "keyword", "words": ["three"], "mode": "monitor", "category": "numbers"}}
    with run_gateway(config(upstream[1], db, guards, ["trial"])) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "watched"},
                              json={"model": "m", "messages": [{"role": "user", "content": ANSWER}]})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == ANSWER
        assert verdicts(gw) == {("trial", "input", "numbers", "block", "monitor"): 1,
                                ("trial", "output", "numbers", "block", "monitor"): 1}
    (record,) = [r for r in records(db) if r.client_request_id == "watched"]
    assert [v["mode"] for v in record.annotations["guard.input"] + record.annotations["guard.output"]] == \
        ["monitor", "monitor"]


def test_a_blocked_whole_answer_is_withheld_with_finish_reason_content_filter(upstream: tuple[OpenAIUpstream, str],
                                                                             tmp_path: Path) -> None:
    guards = {"no-seven": {"type": "keyword", "words": ["seven"], "direction": "output"}}
    with run_gateway(config(upstream[1], tmp_path / "log.db", guards, ["no-seven"])) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions",
                              json={"model": "m", "messages": [{"role": "user", "content": ANSWER}]})
        clean = httpx.post(gw.url + "/v1/chat/completions",
                           json={"model": "m", "messages": [{"role": "user", "content": "one two"}]})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert body["usage"]["completion_tokens"] == 10  # what the upstream generated is still accounted
    assert clean.json()["choices"][0]["message"]["content"] == "one two"


def stream_events(response: httpx.Response) -> list[Any]:
    return [orjson.loads(line[6:]) if line != "data: [DONE]" else "[DONE]"
            for line in response.text.splitlines() if line.startswith("data: ")]


def test_a_blocked_stream_ends_cleanly_and_the_held_back_text_never_reaches_the_client(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    guards = {"no-seven": {"type": "keyword", "words": ["seven"], "direction": "output"}}
    with run_gateway(config(upstream[1], db, guards, ["no-seven"], hold_back_chars=8)) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "cut"}, json={
            "model": "m", "messages": [{"role": "user", "content": ANSWER}], "stream": True,
            "stream_options": {"include_usage": True}})
        whole = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "one two three"}], "stream": True})
    assert response.status_code == 200
    events = stream_events(response)
    assert events[-1] == "[DONE]"
    text = "".join(choice["delta"].get("content") or ""
                   for event in events[:-1] for choice in event.get("choices", []))
    assert "seven" not in text and ANSWER.startswith(text) and text.startswith("one two three four")
    finishes = [choice["finish_reason"] for event in events[:-1] for choice in event.get("choices", [])
                if choice["finish_reason"]]
    assert finishes == ["content_filter"]
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] > 0  # usage, then [DONE]
    assert "".join(choice["delta"].get("content") or "" for event in stream_events(whole)[:-1]
                   for choice in event.get("choices", [])) == "one two three"  # nothing held back for good
    wait_for(lambda: [r for r in records(db) if r.client_request_id == "cut"], what="the log row")
    (record,) = [r for r in records(db) if r.client_request_id == "cut"]
    assert record.finish_reason == "content_filter" and record.status_code == 200
    assert record.annotations["guard.output"][0]["rule"] == "seven"
    assert record.response_body == text


def test_pii_is_masked_before_the_upstream_and_in_whole_answers(upstream: tuple[OpenAIUpstream, str],
                                                                tmp_path: Path) -> None:
    fake, url = upstream
    db = tmp_path / "log.db"
    guards = {"pii": {"type": "pii"}}
    with run_gateway(config(url, db, guards, ["pii"])) as gw:
        fake.reset()
        response = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "masked"}, json={
            "model": "m", "messages": [{"role": "user", "content": "write to jane.doe@example.com today"}]})
        assert response.status_code == 200
        sent = fake.requests[0].body["messages"][0]["content"]
        assert sent == "write to [EMAIL] today"  # the upstream never saw the address
        assert response.json()["choices"][0]["message"]["content"] == "write to [EMAIL] today"
        parts = httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111 please"}]}]})
        assert parts.status_code == 200
        assert fake.requests[-1].body["messages"][0]["content"] == [
            {"type": "text", "text": "card [CARD] please"}]
    (record,) = [r for r in records(db) if r.client_request_id == "masked"]
    assert [v["rule"] for v in record.annotations["guard.input"]] == ["email"]


def test_pii_in_an_answer_is_masked_when_the_guard_watches_output(upstream: tuple[OpenAIUpstream, str],
                                                                  tmp_path: Path) -> None:
    guards = {"pii-out": {"type": "pii", "direction": "output"}}
    with run_gateway(config(upstream[1], tmp_path / "log.db", guards, ["pii-out"])) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "reach me at 10.1.2.3 ok"}]})
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "reach me at [IP] ok"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_a_request_can_add_defined_guards_by_name_but_not_unknown_ones(upstream: tuple[OpenAIUpstream, str],
                                                                       tmp_path: Path) -> None:
    guards = {"strict": {"type": "keyword", "words": ["three"]}, "pii": {"type": "pii"}}
    with run_gateway(config(upstream[1], tmp_path / "log.db", guards, [])) as gw:  # the model runs none itself
        body = {"model": "m", "messages": [{"role": "user", "content": ANSWER}]}
        plain = httpx.post(gw.url + "/v1/chat/completions", json=body)
        assert plain.status_code == 200 and "x-sluice-guards" not in plain.headers
        stricter = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-sluice-guards": "pii, strict"})
        assert stricter.status_code == 400 and stricter.json()["error"]["code"] == "content_filter"
        assert stricter.headers["x-sluice-guards"] == "pii,strict"
        unknown = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-sluice-guards": "strictest"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "message": "Unknown guard `strictest` in the `x-sluice-guards` header; defined guards: pii, strict.",
        "type": "invalid_request_error", "param": "x-sluice-guards", "code": "unknown_guard"}


def test_unmask_puts_the_prompts_own_values_back_in_the_answer_whole_and_streamed(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    fake, url = upstream
    guards = {"pii": {"type": "pii", "unmask": True, "direction": "input"}}
    prompt = "write to jane.doe@example.com and bob@example.org then jane.doe@example.com again"
    with run_gateway(config(url, tmp_path / "log.db", guards, ["pii"], hold_back_chars=4)) as gw:
        fake.reset()
        whole = chat(gw, prompt)
        streamed = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": prompt}], "stream": True})
        sent = [request.body["messages"][0]["content"] for request in fake.requests]
    assert sent == ["write to [EMAIL_1] and [EMAIL_2] then [EMAIL_1] again"] * 2  # numbered, never the values
    assert whole.json()["choices"][0]["message"]["content"] == prompt  # the echo, with the values put back
    text = "".join(choice["delta"].get("content") or "" for event in stream_events(streamed)[:-1]
                   for choice in event.get("choices", []))
    assert text == prompt
