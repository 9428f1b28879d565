"""The structured-output stage through a real gateway and a scripted upstream: validate, repair, re-ask with the
errors, every attempt billed and logged; streams buffered or passed through; backends that cannot enforce get the
schema in the prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.gateway import records, run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
VALID = '{"name": "Ann", "age": 31}'


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream([VALID])
    with serve_app(upstream.app()) as url:
        yield upstream, url


def gateway(url: str, db: Path, *, backend: dict[str, Any] | None = None, **overrides: Any) -> Any:
    config = upstream_config(url, db, **overrides)
    config["backends"]["up"].update(backend or {})
    return run_gateway(config)


def chat(gw: Any, *, stream: bool = False, request_id: str = "r1", **extra: Any) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "Who is Ann?"}], "response_format": FORMAT,
            "stream": stream, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-request-id": request_id})


def sse_payloads(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in response.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def test_a_valid_answer_passes_with_its_verdict(scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    with gateway(url, tmp_path / "log.db") as gw:
        response = chat(gw)
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == VALID
    assert body["structured_output"] == {"valid": True, "mode": "validated", "attempts": 1}
    assert response.headers["x-sluice-structured-mode"] == "validated"
    assert response.headers["x-sluice-structured-attempts"] == "1"
    assert upstream.requests[0]["response_format"] == FORMAT  # an unrecognised server gets it as sent
    assert body["usage"]["completion_tokens"] == 4


def test_near_json_is_repaired_and_replaced_by_its_json(scripted: tuple[ScriptedUpstream, str],
                                                        tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ['Sure! Here it is:\n```json\n{"name": "Ann", "age": 31,}\n```']
    with gateway(url, tmp_path / "log.db") as gw:
        response = chat(gw)
    body = response.json()
    assert orjson.loads(body["choices"][0]["message"]["content"]) == {"name": "Ann", "age": 31}
    assert body["structured_output"]["mode"] == "repaired"
    assert len(upstream.requests) == 1


def test_an_invalid_answer_is_reasked_with_its_errors_and_every_attempt_is_billed(
        scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ['{"name": "Ann", "age": -4}', VALID]
    db = tmp_path / "log.db"
    price = {"input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0}
    with gateway(url, db, structured={"retry_token_budget": 100}, pricing={"targets": {"up": price}}) as gw:
        response = chat(gw, max_tokens=500)
    body = response.json()
    assert response.status_code == 200 and body["choices"][0]["message"]["content"] == VALID
    assert body["structured_output"] == {"valid": True, "mode": "reasked", "attempts": 2}
    assert body["usage"] == {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}
    reask = upstream.requests[1]
    assert reask["messages"][-2] == {"role": "assistant", "content": '{"name": "Ann", "age": -4}'}
    assert reask["messages"][-1]["role"] == "user" and "- $.age: -4 is less than the minimum of 0" in \
        reask["messages"][-1]["content"]
    assert reask["max_tokens"] == 100  # capped by what the re-ask budget leaves
    (record,) = records(db)
    assert (record.prompt_tokens, record.completion_tokens) == (20, 8)
    assert record.cost_usd == pytest.approx((20 * 1.0 + 8 * 2.0) / 1e6)  # both attempts billed
    assert record.annotations["structured.mode"] == "reasked"
    first, second = record.annotations["structured.attempts"]
    assert first["errors"] == ["$.age: -4 is less than the minimum of 0"] and second["errors"] == []
    assert first["completion_tokens"] == second["completion_tokens"] == 4


def test_an_answer_cut_off_is_reasked_with_a_word_about_length(scripted: tuple[ScriptedUpstream, str],
                                                                tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts, upstream.finish_reasons = ['{"name": "Ann", "age":', VALID], ["length", "stop"]
    with gateway(url, tmp_path / "log.db") as gw:
        response = chat(gw, max_tokens=4)
    assert response.json()["structured_output"]["mode"] == "reasked"
    feedback = upstream.requests[1]["messages"][-1]["content"]
    assert "- the answer was cut off at the token limit: give a shorter one" in feedback


def test_past_the_attempts_it_is_a_502_with_every_attempt_logged(scripted: tuple[ScriptedUpstream, str],
                                                                 tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["I cannot answer that."]
    db = tmp_path / "log.db"
    with gateway(url, db, structured={"max_attempts": 2}) as gw:
        response = chat(gw)
        metrics = httpx.get(gw.url + "/metrics").text
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "invalid_structured_output" and "after 2 attempts" in error["message"]
    assert response.headers["x-should-retry"] == "false"  # the SDKs would spend every attempt again
    assert response.headers["x-sluice-structured-attempts"] == "2"
    assert len(upstream.requests) == 2
    (record,) = records(db)
    assert record.status_code == 502 and (record.prompt_tokens, record.completion_tokens) == (20, 8)
    assert [len(a["errors"]) for a in record.annotations["structured.attempts"]] == [1, 1]
    assert 'sluice_structured_answers_total{mode="failed",model="m"} 1.0' in metrics


def test_the_openai_sdk_does_not_resend_the_final_502(scripted: tuple[ScriptedUpstream, str],
                                                      tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["no JSON here"]
    with gateway(url, tmp_path / "log.db", structured={"max_attempts": 2}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=2)
        with pytest.raises(openai.InternalServerError) as error:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                           response_format=FORMAT)  # type: ignore[arg-type]
    assert error.value.status_code == 502
    assert len(upstream.requests) == 2  # the gateway's two attempts; the SDK's two retries not spent


def test_on_failure_return_gives_the_last_answer_marked_invalid(scripted: tuple[ScriptedUpstream, str],
                                                                tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ['{"name": "Ann"}']
    with gateway(url, tmp_path / "log.db", structured={"on_failure": "return", "max_attempts": 1}) as gw:
        response = chat(gw)
    verdict = response.json()["structured_output"]
    assert response.status_code == 200 and verdict["valid"] is False and verdict["mode"] == "failed"
    assert verdict["errors"] == ["$: 'age' is a required property"]


def test_no_budget_left_means_no_reask(scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["nope"]
    with gateway(url, tmp_path / "log.db", structured={"retry_token_budget": 0}) as gw:
        assert chat(gw).status_code == 502
    assert len(upstream.requests) == 1


def test_a_model_may_turn_enforcement_off(scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["not json"]
    models = {"m": {"targets": [{"backend": "up", "model": "up-model"}], "structured": {"enforce": False}}}
    with gateway(url, tmp_path / "log.db", models=models) as gw:
        response = chat(gw)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "not json"
    assert "structured_output" not in response.json() and "x-sluice-structured-mode" not in response.headers


def test_a_stream_from_an_unenforcing_backend_is_buffered_then_replayed(
        scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ['{"name": "Ann", "age": 31', VALID]  # cut off: repaired, no re-ask
    with gateway(url, tmp_path / "log.db") as gw:
        response = chat(gw, stream=True, stream_options={"include_usage": True})
    payloads = sse_payloads(response)
    text = "".join((choice.get("delta") or {}).get("content") or "" for p in payloads for choice in p["choices"])
    assert orjson.loads(text) == {"name": "Ann", "age": 31}
    finishing = [p for p in payloads if p["choices"] and p["choices"][0].get("finish_reason")]
    assert finishing[-1]["structured_output"] == {"valid": True, "mode": "repaired", "attempts": 1}
    assert payloads[-1]["usage"]["completion_tokens"] == 4
    assert response.headers["x-sluice-structured-mode"] == "repaired"
    assert upstream.requests[0]["stream"] is False  # buffered: the upstream answered whole


def test_a_stream_from_an_enforcing_backend_flows_with_the_verdict_at_the_end(
        scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    with gateway(url, tmp_path / "log.db", backend={"structured_output": "json_schema"}) as gw:
        response = chat(gw, stream=True)
    payloads = sse_payloads(response)
    assert upstream.requests[0]["stream"] is True
    content = [c["delta"]["content"] for p in payloads for c in p["choices"] if c.get("delta", {}).get("content")]
    assert len(content) == 4 and orjson.loads("".join(content)) == {"name": "Ann", "age": 31}
    finishing = [p for p in payloads if p["choices"] and p["choices"][0].get("finish_reason")]
    assert finishing[-1]["structured_output"] == {"valid": True, "mode": "guided", "attempts": 1}


def test_a_backend_without_json_support_gets_the_schema_in_the_prompt(
        scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    with gateway(url, tmp_path / "log.db", backend={"structured_output": "none"}) as gw:
        response = chat(gw, messages=[{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Who is Ann?"}])
    assert response.json()["structured_output"]["mode"] == "validated"
    sent = upstream.requests[0]
    assert "response_format" not in sent
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\nAnswer with one JSON value")
    assert orjson.dumps(PERSON).decode() in system["content"]


def test_a_json_mode_backend_gets_json_mode_and_the_schema_in_the_prompt(
        scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    with gateway(url, tmp_path / "log.db", backend={"structured_output": "json_object"}) as gw:
        chat(gw)
        httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}})
    schema_request, object_request = upstream.requests
    assert schema_request["response_format"] == {"type": "json_object"}
    assert schema_request["messages"][0]["role"] == "system"
    assert object_request["response_format"] == {"type": "json_object"} and len(object_request["messages"]) == 1


def test_completions_are_reasked_by_extending_the_prompt(scripted: tuple[ScriptedUpstream, str],
                                                         tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["[1, 2]", VALID]
    with gateway(url, tmp_path / "log.db") as gw:
        response = httpx.post(gw.url + "/v1/completions", json={
            "model": "m", "prompt": "Ann as JSON: ", "response_format": FORMAT})
    assert response.json()["structured_output"]["mode"] == "reasked"
    prompt = upstream.requests[1]["prompt"]
    assert prompt.startswith("Ann as JSON: [1, 2]\n\nYour answer did not match")
    assert "$: [1, 2] is not of type" in prompt


def test_openai_servers_are_recognised_as_enforcing(tmp_path: Path) -> None:
    upstream = ScriptedUpstream([VALID], owned_by="vllm")
    with serve_app(upstream.app()) as url, gateway(url, tmp_path / "log.db") as gw:
        httpx.get(gw.url + "/health/ready")
        response = chat(gw)
    assert response.json()["structured_output"]["mode"] == "guided"


def test_the_simulator_is_guided_and_streams_unbuffered(tmp_path: Path) -> None:
    config = {"store": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
              "backends": {"h100": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm"}},
              "models": {"m": {"targets": [{"backend": "h100", "model": "llama-3.1-8b"}]}}}
    schema = {**PERSON, "properties": {**PERSON["properties"], "nick": {"not": {"const": "x"}}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    with run_gateway(config) as gw:
        whole = chat(gw, response_format=response_format)
        streamed = chat(gw, stream=True, response_format=response_format)
    verdict = whole.json()["structured_output"]
    assert verdict == {"valid": True, "mode": "guided", "attempts": 1, "unenforced": ["not"]}
    payloads = sse_payloads(streamed)
    content = [c["delta"]["content"] for p in payloads for c in p["choices"] if c.get("delta", {}).get("content")]
    assert len(content) > 5  # token by token, as generated: not one buffered replay
    assert set(orjson.loads("".join(content))) >= {"name", "age"}
    finishing = [p for p in payloads if p["choices"] and p["choices"][0].get("finish_reason")]
    assert finishing[-1]["structured_output"]["mode"] == "guided"
