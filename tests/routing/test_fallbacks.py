"""Fallback chains through a real gateway: tried in order on the configured failures, never on the client's own
errors; the response and the request log say which model and target finally answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.routing.e2e import ANSWER, USER, chat_paths, config, records, sample, stream_events, streamed_text, upstreams
from tests.support.gateway import run_gateway


def models(fallbacks: list[str], **primary: Any) -> dict[str, Any]:
    return {"m": {"targets": [{"backend": "a", "model": "up-model"}], "fallbacks": fallbacks, **primary},
            "spare": {"targets": [{"backend": "b", "model": "up-model"}]},
            "last": {"targets": [{"backend": "c", "model": "up-model"}]}}


def post(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": USER, **body}, timeout=30)


def test_a_failing_model_falls_back_and_the_response_says_so(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b", "c") as ups:
        ups["a"][0].fault = "http_500"
        with run_gateway(config(db, {n: u for n, (_, u) in ups.items()}, models(["spare"]))) as gw:
            response = post(gw.url)
            streamed, events = stream_events(gw)
            assert sample(gw, "sluice_fallbacks_total", model="m", fallback="spare", reason="5xx") == 2
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ANSWER
    assert response.json()["model"] == "m"  # the client sees the name it asked for
    assert (response.headers["x-sluice-fallback"], response.headers["x-sluice-target"]) == ("spare", "b")
    assert streamed.headers["x-sluice-fallback"] == "spare" and streamed_text(events) == ANSWER
    logged = records(db)
    assert [(r.model, r.target, r.status_code, r.attempts) for r in logged] == [("m", "b", 200, 2)] * 2
    assert (chat_paths(ups["a"][0]), chat_paths(ups["b"][0])) == (2, 2)


def test_a_healthy_model_answers_without_the_fallback_header(tmp_path: Path) -> None:
    with (upstreams("a", "b", "c") as ups,
          run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models(["spare"]))) as gw):
        response = post(gw.url)
    assert response.status_code == 200 and "x-sluice-fallback" not in response.headers
    assert chat_paths(ups["b"][0]) == 0


def test_fallbacks_are_tried_in_order(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b", "c") as ups:
        ups["a"][0].fault = "http_503"
        ups["b"][0].fault = "slow_headers:5"
        cfg = config(db, {n: u for n, (_, u) in ups.items()}, models(["spare", "last"]))
        cfg["backends"]["b"]["read_timeout_s"] = 0.3
        with run_gateway(cfg) as gw:
            response = post(gw.url)
    assert response.status_code == 200 and response.headers["x-sluice-fallback"] == "last"
    assert [chat_paths(ups[n][0]) for n in "abc"] == [1, 1, 1]
    (record,) = records(db)
    assert (record.target, record.attempts) == ("c", 3)


@pytest.mark.parametrize("fault", ["http_400", "http_429:7"])
def test_no_fallback_on_what_fallback_on_leaves_out(tmp_path: Path, fault: str) -> None:
    # http_400: the client's own error (never by default); 429: left out of this model's fallback_on.
    with upstreams("a", "b", "c") as ups:
        ups["a"][0].fault = fault
        primary = {"fallback_on": ["5xx", "timeout", "connection"]}
        with run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()},
                                models(["spare"], **primary))) as gw:
            response = post(gw.url)
    assert response.status_code in (400, 429)
    assert chat_paths(ups["b"][0]) == 0


def test_an_open_breaker_sends_requests_straight_to_the_fallback(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b", "c") as ups:
        ups["a"][0].fault = "http_500"
        primary = {"circuit_breaker": {"consecutive_failures": 1}}
        with run_gateway(config(db, {n: u for n, (_, u) in ups.items()}, models(["spare"], **primary))) as gw:
            statuses = [post(gw.url).status_code for _ in range(4)]
            assert sample(gw, "sluice_fallbacks_total", model="m", fallback="spare", reason="connection") == 3
    assert statuses == [200] * 4
    assert chat_paths(ups["a"][0]) == 1  # it failed once; then the breaker kept traffic off it
    assert [r.attempts for r in records(db)] == [2, 1, 1, 1]


def test_with_every_replica_out_and_no_fallback_the_client_gets_a_fast_503(tmp_path: Path) -> None:
    with upstreams("a", "b", "c") as ups:
        ups["a"][0].fault = "http_500"
        primary = {"circuit_breaker": {"consecutive_failures": 1, "cooldown_s": 60}}
        with run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()},
                                models([], **primary))) as gw:
            assert post(gw.url).status_code == 502
            response = post(gw.url)
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable", "no_healthy_target")
    assert "`m`" in error["message"]
    assert chat_paths(ups["a"][0]) == 1


def test_a_fallback_that_cannot_serve_the_endpoint_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "c") as ups:
        ups["a"][0].fault = "http_500"
        cfg = config(db, {n: u for n, (_, u) in ups.items()}, {})
        cfg["backends"]["claude"] = {"type": "anthropic", "base_url": "http://127.0.0.1:9"}
        cfg["models"] = {"m": {"targets": [{"backend": "a", "model": "up-model"}], "fallbacks": ["haiku", "last"]},
                         "haiku": {"targets": [{"backend": "claude"}]},
                         "last": {"targets": [{"backend": "c", "model": "up-model"}]}}
        with run_gateway(cfg) as gw:
            response = httpx.post(gw.url + "/v1/completions", json={"model": "m", "prompt": "one two"}, timeout=30)
    assert response.status_code == 200 and response.headers["x-sluice-fallback"] == "last"


def test_models_list_their_fallbacks_and_replicas(tmp_path: Path) -> None:
    with (upstreams("a", "b", "c") as ups,
          run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models(["spare"]))) as gw):
        listed = {m["id"]: m for m in httpx.get(gw.url + "/v1/models").json()["data"]}
        status = httpx.get(gw.url + "/admin/status").json()
    assert listed["m"]["fallbacks"] == ["spare"]
    assert listed["m"]["targets"] == [{"backend": "a", "type": "openai", "model": "up-model", "weight": 100.0,
                                       "role": "stable"}]
    assert listed["m"]["endpoints"] == ["chat", "completions", "embeddings"]
    assert status["models"] == ["last", "m", "spare"]
