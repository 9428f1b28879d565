"""Retries through a real gateway and real loopback upstreams: what is retried, where, after how long — and
that nothing is retried once part of an answer reached the client."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.routing.e2e import (
    ANSWER,
    USER,
    chat_paths,
    config,
    records,
    sample,
    stream_events,
    streamed_text,
    upstreams,
)
from tests.support.gateway import run_gateway

ONE = {"m": {"targets": [{"backend": "a", "model": "up-model"}]}}
TWO = {"m": {"targets": [{"backend": "a", "model": "up-model"}, {"backend": "b", "model": "up-model"}]}}


def ask(client: openai.OpenAI, stream: bool) -> str:
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="m", messages=USER, stream=True) if c.choices)
    return client.chat.completions.create(model="m", messages=USER).choices[0].message.content or ""


@pytest.mark.parametrize("stream", [False, True])
def test_a_replica_answering_503_is_retried_on_the_other(tmp_path: Path, stream: bool) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        (sick, _), (well, _) = ups["a"], ups["b"]
        sick.fault = "http_503"
        cfg = config(db, {n: u for n, (_, u) in ups.items()}, TWO,
                     routing={"circuit_breaker": {"enabled": False}})
        with run_gateway(cfg) as gw:
            answers = [ask(gw.client(), stream) for _ in range(12)]
    assert answers == [ANSWER] * 12
    logged = records(db)
    assert [r.status_code for r in logged] == [200] * 12
    assert {r.target for r in logged} == {"b"}
    retried = [r for r in logged if r.attempts == 2]
    assert len(retried) == chat_paths(sick) > 0  # every request that met the sick replica, and only those
    assert sum(r.attempts for r in logged) == 12 + chat_paths(sick)
    assert chat_paths(well) == 12


@pytest.mark.parametrize("stream", [False, True])
def test_a_503_then_recovery_is_retried_on_the_same_replica_when_configured(tmp_path: Path, stream: bool) -> None:
    db = tmp_path / "log.db"
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault, app.fault_times = "http_503", 1
        cfg = config(db, {"a": url}, {"m": {**ONE["m"], "retry": {"same_target_on": ["connection", "5xx"]}}})
        with run_gateway(cfg) as gw:
            assert ask(gw.client(), stream) == ANSWER
            assert sample(gw, "sluice_retries_total", model="m", reason="5xx") == 1
    (record,) = records(db)
    assert (record.status_code, record.attempts, record.target) == (200, 2, "a")
    assert chat_paths(app) == 2


def test_by_default_a_lone_replicas_5xx_is_not_hammered_again(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault, app.fault_times = "http_500", 1
        with (run_gateway(config(tmp_path / "log.db", {"a": url}, ONE)) as gw,
              pytest.raises(openai.InternalServerError)):
            gw.client().chat.completions.create(model="m", messages=USER)
    assert chat_paths(app) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_429_retry_after_is_waited_then_the_same_replica_retried(tmp_path: Path, stream: bool) -> None:
    db = tmp_path / "log.db"
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault, app.fault_times = "http_429:0.3", 1
        with run_gateway(config(db, {"a": url}, ONE)) as gw:
            assert ask(gw.client(), stream) == ANSWER
            # The wait before the retry is the upstream's retry-after, parsed from its header: not a backoff draw.
            assert sample(gw, "sluice_retry_wait_seconds_sum", model="m") == pytest.approx(0.3)
            assert sample(gw, "sluice_retry_wait_seconds_count", model="m") == 1
            assert sample(gw, "sluice_retries_total", model="m", reason="429") == 1
            assert sample(gw, "sluice_upstream_attempts_total", target="a", upstream_model="up-model",
                          outcome="429") == 1
    (record,) = records(db)
    assert (record.status_code, record.attempts) == (200, 2)
    assert record.upstream_s >= 0.3  # the wait counts as upstream time, not gateway overhead
    assert chat_paths(app) == 2


def test_a_retry_after_longer_than_the_cap_goes_back_to_the_client(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault = "http_429:7"  # over retry_after_max_s (5 s by default)
        with (run_gateway(config(tmp_path / "log.db", {"a": url}, ONE)) as gw,
              pytest.raises(openai.RateLimitError) as caught):
            gw.client().chat.completions.create(model="m", messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"
    assert chat_paths(app) == 1


def test_a_429_moves_on_to_another_replica_and_throttles_the_one_that_sent_it(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        (limited, _), (free, _) = ups["a"], ups["b"]
        limited.fault = "http_429:30"
        with run_gateway(config(db, {n: u for n, (_, u) in ups.items()}, TWO)) as gw:
            answers = [ask(gw.client(), False) for _ in range(10)]
            waited_s = sample(gw, "sluice_retry_wait_seconds_sum", model="m")
    assert answers == [ANSWER] * 10
    assert chat_paths(limited) <= 1  # after its 429, the replica is left alone for its retry-after
    assert chat_paths(free) == 10
    assert waited_s < 1.0  # another replica needs no retry-after wait, only the backoff


@pytest.mark.parametrize("fault", ["http_400", "tgi_error"])
def test_the_clients_own_errors_are_not_retried(tmp_path: Path, fault: str) -> None:
    with upstreams("a", "b") as ups:
        for app, _ in ups.values():
            app.fault = fault
        with (run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, TWO)) as gw,
              pytest.raises(openai.APIStatusError) as caught):
            gw.client().chat.completions.create(model="m", messages=USER)
    assert 400 <= caught.value.status_code < 500
    assert sum(chat_paths(app) for app, _ in ups.values()) == 1


@pytest.mark.parametrize("fault", ["drop_mid_stream:2", "error_mid_stream:2"])
def test_a_stream_broken_after_output_is_never_retried(tmp_path: Path, fault: str) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        for app, _ in ups.values():
            app.fault = fault
        with run_gateway(config(db, {n: u for n, (_, u) in ups.items()}, TWO)) as gw:
            response, events = stream_events(gw)
    assert response.status_code == 200
    assert streamed_text(events[:-1]) == "one two"  # the partial answer ...
    assert events[-1]["error"]["message"]  # ... then the error event, and a clean close
    assert sum(chat_paths(app) for app, _ in ups.values()) == 1  # exactly one upstream request
    (record,) = records(db)
    assert (record.attempts, record.status_code, record.error_class) == (1, 200, "5xx")


def test_a_stream_dropped_before_its_first_token_is_retried_invisibly(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault, app.fault_times = "drop_mid_stream:0", 1  # the role chunk, then the connection dies
        with run_gateway(config(db, {"a": url}, ONE)) as gw:
            response, events = stream_events(gw)
    assert response.status_code == 200
    assert streamed_text(events) == ANSWER and events[-1] == "[DONE]"
    assert sum(1 for e in events if isinstance(e, dict) and e.get("choices") and
               e["choices"][0]["delta"].get("role")) == 1  # one role chunk: the failed try sent nothing
    assert chat_paths(app) == 2
    (record,) = records(db)
    assert (record.attempts, record.status_code, record.error_class) == (2, 200, None)
    assert record.ttft_s is not None and record.ttft_s > 0


def test_a_slow_replica_is_abandoned_after_the_per_try_timeout(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        ups["a"][0].fault = "slow_headers:5"
        models = {"m": {**TWO["m"], "retry": {"per_try_timeout_s": 0.3}}}
        with run_gateway(config(db, {n: u for n, (_, u) in ups.items()}, models,
                                routing={"circuit_breaker": {"enabled": False}})) as gw:
            answers = [ask(gw.client(), stream) for stream in (False, True, False, True)]
            timeouts = sample(gw, "sluice_upstream_attempts_total", target="a", upstream_model="up-model",
                              outcome="timeout")
    assert answers == [ANSWER] * 4
    logged = records(db)
    assert {r.target for r in logged} == {"b"}
    assert sum(r.attempts for r in logged) - 4 == timeouts == chat_paths(ups["a"][0])


def test_the_total_deadline_stops_retrying(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a") as ups:
        app, url = ups["a"]
        app.fault = "slow_headers:5"
        models = {"m": {**ONE["m"], "retry": {"max_attempts": 5, "total_timeout_s": 0.4,
                                              "same_target_on": ["timeout"]}}}
        with run_gateway(config(db, {"a": url}, models)) as gw:
            response = httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": USER},
                                  timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    assert chat_paths(app) == 1
    (record,) = records(db)
    assert record.attempts == 1 and record.e2e_s is not None and record.e2e_s < 2.0


def test_a_refused_connection_on_one_sim_replica_is_served_by_the_other(tmp_path: Path) -> None:
    from sluice.sim.faults import FaultPlan, RefuseFault

    db = tmp_path / "log.db"
    sim = {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 4096}
    cfg = {"store": {"url": f"sqlite:///{db}"}, "backends": {"sim-a": sim, "sim-b": sim},
           "models": {"m": {"targets": [{"backend": "sim-a", "model": "llama-3.1-8b"},
                                        {"backend": "sim-b", "model": "llama-3.1-8b"}]}}}
    with run_gateway(cfg) as gw:
        gw.state.backends["sim-a"].simulator.set_faults(  # type: ignore[attr-defined]
            FaultPlan(refuse=RefuseFault(for_s=3600)))
        for stream in (False, True) * 4:
            result = gw.client().chat.completions.create(model="m", messages=USER, max_tokens=4, stream=stream)
            if stream:
                list(result)  # type: ignore[call-overload]
    logged = records(db)
    assert [r.status_code for r in logged] == [200] * 8
    assert {r.target for r in logged} == {"sim-b"}
    assert any(r.attempts == 2 for r in logged)
