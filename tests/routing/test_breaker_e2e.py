"""The circuit breaker in a running gateway: it opens and stops traffic to a dead replica, half-opens after
its cooldown, and a probe's outcome closes or reopens it. The gateway's clock is moved by the test."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.routing.e2e import USER, chat_paths, config, sample, upstreams, wait_for
from tests.routing.helpers import Clock
from tests.support.gateway import RunningGateway, run_gateway

A = {"target": "a", "upstream_model": "up-model"}


def post(gw: RunningGateway) -> int:
    return httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": USER}, timeout=30).status_code


def test_breaker_opens_stops_traffic_half_opens_after_cooldown_and_closes_on_success(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        app, url = ups["a"]
        models = {"m": {"targets": [{"backend": "a", "model": "up-model"}], "retry": {"max_attempts": 1},
                        "circuit_breaker": {"consecutive_failures": 3, "cooldown_s": 30}}}
        with run_gateway(config(tmp_path / "log.db", {"a": url}, models)) as gw:
            clock = gw.state.gateway.router.clock = Clock(time.monotonic())  # type: ignore[assignment]
            app.fault = "http_500"

            assert [post(gw) for _ in range(3)] == [502, 502, 502]
            assert sample(gw, "sluice_circuit_breaker_state", **A) == 2  # open
            assert [post(gw) for _ in range(5)] == [503] * 5  # refused at once ...
            assert chat_paths(app) == 3  # ... without reaching the dead replica

            clock.advance(29.9)
            assert post(gw) == 503 and chat_paths(app) == 3
            clock.advance(0.1)  # cooldown over: the next request is the probe
            app.fault = None
            assert post(gw) == 200
            assert chat_paths(app) == 4
            assert sample(gw, "sluice_circuit_breaker_state", **A) == 0  # closed
            assert [post(gw) for _ in range(3)] == [200] * 3

            transitions = {state: sample(gw, "sluice_circuit_breaker_transitions_total", **A, state=state)
                           for state in ("open", "half_open", "closed")}
    assert transitions == {"open": 1, "half_open": 1, "closed": 1}


def test_a_failed_probe_reopens_it_for_another_cooldown(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        app, url = ups["a"]
        models = {"m": {"targets": [{"backend": "a", "model": "up-model"}], "retry": {"max_attempts": 1},
                        "circuit_breaker": {"consecutive_failures": 2, "cooldown_s": 10}}}
        with run_gateway(config(tmp_path / "log.db", {"a": url}, models)) as gw:
            clock = gw.state.gateway.router.clock = Clock(time.monotonic())  # type: ignore[assignment]
            app.fault = "http_503"
            assert [post(gw) for _ in range(2)] == [502, 502]

            clock.advance(10)
            assert post(gw) == 502  # the probe fails ...
            assert sample(gw, "sluice_circuit_breaker_state", **A) == 2
            assert [post(gw) for _ in range(3)] == [503] * 3  # ... and the breaker is open again
            assert chat_paths(app) == 3

            clock.advance(10)
            app.fault = None
            assert post(gw) == 200


def test_the_clients_errors_and_disconnects_never_open_it(tmp_path: Path) -> None:
    with upstreams("a") as ups:
        app, url = ups["a"]
        models = {"m": {"targets": [{"backend": "a", "model": "up-model"}],
                        "circuit_breaker": {"consecutive_failures": 2}}}
        with run_gateway(config(tmp_path / "log.db", {"a": url}, models)) as gw:
            app.fault = "http_400"
            assert [post(gw) for _ in range(4)] == [400] * 4
            app.fault = "slow_tokens:0.2"
            for _ in range(3):  # the client leaves after the first chunk of a stream
                with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=30,
                                  json={"model": "m", "messages": USER, "stream": True}) as response:
                    next(response.iter_lines())
            wait_for(lambda: sample(gw, "sluice_upstream_attempts_total", **A, outcome="aborted") == 3)
            app.fault = None
            assert post(gw) == 200
            assert sample(gw, "sluice_circuit_breaker_transitions_total", **A, state="open") == 0
