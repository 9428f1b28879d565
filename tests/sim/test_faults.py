"""Fault injection: the plan, its seeded dice, and every fault mode as a client sees it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from sluice.sim import FaultPlan, MonotonicClock, Simulator, combine, create_app, parse_fault_flag
from sluice.sim.faults import ErrorFault, FaultInjector
from tests.sim.support import MODEL, make_simulator, metric_samples, serve_simulator
from tests.support.servers import serve_app

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def test_fault_flags_parse_into_one_plan() -> None:
    plan = combine([parse_fault_flag(flag) for flag in (
        "error:status=500,rate=0.05", "error:status=429,rate=0.02,retry_after_s=2", "spike:rate=0.1,seconds=2",
        "stall:seconds=5,after_tokens=10", "drop:rate=0.5,after_tokens=20", "refuse:rate=0.2", "degraded", "seed:7")])
    assert [(e.status, e.rate, e.retry_after_s) for e in plan.errors] == [(500, 0.05, None), (429, 0.02, 2.0)]
    assert plan.latency_spike and (plan.latency_spike.rate, plan.latency_spike.seconds) == (0.1, 2.0)
    assert plan.stall and (plan.stall.rate, plan.stall.seconds, plan.stall.after_tokens) == (1.0, 5.0, 10)
    assert plan.drop and (plan.drop.rate, plan.drop.after_tokens) == (0.5, 20)
    assert plan.refuse and plan.refuse.rate == 0.2
    assert plan.degraded and (plan.degraded.slowdown, plan.degraded.error_rate) == (2.0, 0.05)
    assert plan.seed == 7 and plan.slowdown == 2.0


@pytest.mark.parametrize("flag", ["error:status=200,rate=1", "error:rate=2,status=500", "stall:after_tokens=1",
                                  "explode", "drop:after_tokens"])
def test_bad_fault_flags_are_refused(flag: str) -> None:
    with pytest.raises(ValueError):
        parse_fault_flag(flag)


def test_the_dice_are_seeded_and_the_rates_hold() -> None:
    plan = FaultPlan(errors=(ErrorFault(status=500, rate=0.1), ErrorFault(status=429, rate=0.2)), seed=11)
    first = [FaultInjector(plan).for_request().error_status for _ in range(1)]
    injector, again = FaultInjector(plan), FaultInjector(plan)
    draws = [injector.for_request().error_status for _ in range(2000)]
    assert draws == [again.for_request().error_status for _ in range(2000)]
    assert draws[:1] == first
    assert draws.count(500) / 2000 == pytest.approx(0.1, abs=0.02)
    assert draws.count(429) / 2000 == pytest.approx(0.2, abs=0.03)
    other = FaultInjector(plan.model_copy(update={"seed": 12}))
    assert draws != [other.for_request().error_status for _ in range(2000)]


@pytest.fixture
def fast_sim() -> Simulator:
    return make_simulator()


@pytest.fixture
def virtual_url(fast_sim: Simulator) -> Iterator[str]:
    with serve_app(create_app(fast_sim)) as url:
        yield url


@pytest.fixture
def realtime_url() -> Iterator[str]:
    with serve_app(create_app(make_simulator(clock=MonotonicClock()))) as url:
        yield url


def set_faults(url: str, plan: dict[str, object]) -> None:
    response = httpx.post(f"{url}/sim/faults", json=plan)
    assert response.status_code == 200, response.text


def test_error_faults_answer_with_the_status_and_retry_after(virtual_url: str) -> None:
    client = openai.OpenAI(base_url=f"{virtual_url}/v1", api_key="x", max_retries=0)
    set_faults(virtual_url, {"errors": [{"status": 500, "rate": 1.0}]})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**CHAT)
    set_faults(virtual_url, {"errors": [{"status": 429, "rate": 1.0, "retry_after_s": 3}]})
    response = httpx.post(f"{virtual_url}/v1/chat/completions", json=CHAT)
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.headers["x-sluice-sim-faults"] == "error"
    assert response.json()["error"]["type"] == "RateLimitError"
    httpx.delete(f"{virtual_url}/sim/faults")
    assert client.chat.completions.create(**CHAT).choices[0].message.content


def test_a_seeded_error_rate_fails_the_same_requests_every_time(virtual_url: str) -> None:
    def pattern() -> list[int]:
        set_faults(virtual_url, {"errors": [{"status": 503, "rate": 0.3}], "seed": 5})
        with httpx.Client(base_url=virtual_url) as http:
            return [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(30)]

    first = pattern()
    assert first == pattern() and set(first) == {200, 503}


def test_bad_fault_plans_are_a_400(virtual_url: str) -> None:
    response = httpx.post(f"{virtual_url}/sim/faults", json={"errors": [{"status": 500, "rate": 1.5}]})
    assert response.status_code == 400
    assert httpx.get(f"{virtual_url}/sim/faults").json()["errors"] == []


def test_a_latency_spike_holds_the_first_token_back(realtime_url: str) -> None:
    set_faults(realtime_url, {"latency_spike": {"rate": 1.0, "seconds": 60}})
    with httpx.stream("POST", f"{realtime_url}/v1/chat/completions", json={**CHAT, "stream": True},
                      timeout=httpx.Timeout(5, read=0.5)) as response:
        assert response.headers["x-sluice-sim-faults"] == "latency_spike"
        with pytest.raises(httpx.ReadTimeout):
            next(response.iter_lines())


def test_a_stall_pauses_the_stream_after_n_tokens(realtime_url: str) -> None:
    set_faults(realtime_url, {"stall": {"seconds": 60, "after_tokens": 3}})
    received: list[str] = []
    with httpx.stream("POST", f"{realtime_url}/v1/completions", json={**_completion(), "stream": True},
                      timeout=httpx.Timeout(5, read=0.5)) as response:
        assert response.headers["x-sluice-sim-faults"] == "stall"
        with pytest.raises(httpx.ReadTimeout):
            received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 3


def test_a_dropped_stream_ends_without_done(virtual_url: str) -> None:
    set_faults(virtual_url, {"drop": {"after_tokens": 4}})
    received: list[str] = []
    with (httpx.stream("POST", f"{virtual_url}/v1/completions", json={**_completion(), "stream": True}) as response,
          pytest.raises(httpx.RemoteProtocolError)):
        received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 4 and "[DONE]" not in received[-1]
    client = openai.OpenAI(base_url=f"{virtual_url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIConnectionError):  # non-streaming: the body is cut short
        client.completions.create(**_completion())


def test_refused_connections_fail_at_connect_and_recover(fast_sim: Simulator) -> None:
    fast_sim.set_faults(FaultPlan(refuse={"rate": 1.0}))  # type: ignore[arg-type]
    with serve_simulator(fast_sim) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(**CHAT)
        fast_sim.set_faults(FaultPlan())
        assert client.chat.completions.create(**CHAT).choices[0].message.content


def test_degraded_candidate_is_slower_and_fails_more(virtual_url: str) -> None:
    def ttft_sum() -> float:
        return metric_samples(virtual_url)["vllm:time_to_first_token_seconds_sum{}"]

    httpx.post(f"{virtual_url}/v1/completions", json=_completion())
    healthy = ttft_sum()
    set_faults(virtual_url, {"degraded": {"slowdown": 3, "error_rate": 0}})
    httpx.post(f"{virtual_url}/v1/completions", json=_completion())
    assert ttft_sum() - healthy == pytest.approx(3 * healthy, rel=1e-9)
    assert httpx.get(f"{virtual_url}/sim/state").json()["slowdown"] == 3
    set_faults(virtual_url, {"degraded": {"error_rate": 1.0}})
    assert httpx.post(f"{virtual_url}/v1/completions", json=_completion()).status_code == 500


def _completion() -> dict[str, object]:
    return {"model": MODEL, "prompt": "one two three", "max_tokens": 10}


def test_a_refusal_window_closes_every_connection_until_it_ends() -> None:
    injector = FaultInjector(FaultPlan.model_validate({"refuse": {"for_s": 10}}), now_s=100.0)
    assert injector.refuse_connection(105.0)
    assert not injector.refuse_connection(110.5)
