"""The progressive canary end to end: simulated GPU backends in the gateway, load driven from the test,
the driver analysing windows of the request log and acting on its verdicts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.sim import DegradedFault, FaultPlan
from tests.rollout.support import wait_for
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.servers import serve_app

SIM = {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 8192}


def sim_config(db: Path, webhook_url: str | None = None, **canary: Any) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{db}", "log_bodies": "none", "flush_interval_s": 0.05},
        "rollout": {"poll_interval_s": 0.1, "canary": {"log_grace_s": 0.2, "webhooks": [webhook_url] if webhook_url
                                                       else [], **canary}},
        "backends": {"stable-gpu": SIM, "candidate-gpu": {**SIM, "seed": 1}},
        "models": {"chat": {"targets": [{"backend": "stable-gpu", "model": "llama-3.1-8b"}],
                            "retry": {"max_attempts": 1}}},
    }


@contextmanager
def load(gw: RunningGateway, workers: int = 6) -> Iterator[dict[str, int]]:
    """Streamed chat requests from `workers` threads, each from a new user, until the block ends."""
    stop = threading.Event()
    users = count()
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            while not stop.is_set():
                body = {"model": "chat", "stream": True, "max_tokens": 12, "user": f"user-{next(users)}",
                        "messages": [{"role": "user", "content": "Tell me about canaries."}]}
                with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    for _ in response.iter_bytes():
                        pass
                with lock:
                    statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


@contextmanager
def webhook_receiver(fail_first: int = 1) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback webhook endpoint: answers the first `fail_first` POSTs with 500 (to be retried)."""
    received: list[dict[str, Any]] = []
    attempts = count()

    async def hook(request: Request) -> Response:
        if next(attempts) < fail_first:
            return Response(status_code=500)
        received.append(await request.json())
        return Response(status_code=204)

    with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield url + "/hook", received


def start_canary(gw: RunningGateway, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{gw.url}/admin/deployments/chat/start-canary",
                          json={"candidate": [{"backend": "candidate-gpu", "model": "llama-3.1-8b"}], **body},
                          headers={"x-sluice-actor": "test"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def canary(gw: RunningGateway) -> dict[str, Any]:
    return httpx.get(f"{gw.url}/admin/deployments/chat", timeout=10).json()


def finished(gw: RunningGateway) -> dict[str, Any] | None:
    view = canary(gw)
    return view if view["canary"]["state"] not in ("running",) else None


def ready(gw: RunningGateway) -> None:
    wait_for(lambda: httpx.get(f"{gw.url}/health/ready").status_code == 200, what="backends ready")


def test_a_degraded_candidate_is_rolled_back_within_one_interval(tmp_path: Path) -> None:
    with webhook_receiver() as (hook_url, events), \
            run_gateway(sim_config(tmp_path / "s.db", hook_url)) as gw:
        ready(gw)
        gw.state.backends["candidate-gpu"].simulator.set_faults(  # type: ignore[attr-defined]
            FaultPlan(degraded=DegradedFault(slowdown=3.0, error_rate=0.2)))
        with load(gw) as statuses:
            started = time.monotonic()
            run = start_canary(gw, steps=[50, 100], interval_s=2.0, min_requests=20)["canary"]
            done = wait_for(lambda: finished(gw), timeout_s=15, what="the canary to finish")
            took_s = time.monotonic() - started
        assert done["canary"]["state"] == "rolled_back"
        # one interval (2 s), the log grace (0.2 s) and a poll (0.1 s), plus the analysis itself
        assert took_s < 2.0 + 0.2 + 0.1 + 3.0
        assert done["candidate_weight"] == 0 and done["candidate"][0]["backend"] == "candidate-gpu"
        [verdict] = done["canary"]["verdicts"]  # the first window decided it: within one interval
        assert verdict["window_end"] - verdict["window_start"] == pytest.approx(2.0)
        evidence = verdict["evidence"]
        assert (verdict["step"], verdict["verdict"], verdict["action"]) == (1, "fail", "rollback")
        failed = {c["name"] for c in evidence["checks"] if c["outcome"] == "fail"}
        assert "tpot" in failed  # three times slower decode
        assert evidence["candidate"]["failure_rate"] > evidence["stable"]["failure_rate"]
        history = httpx.get(f"{gw.url}/admin/deployments/chat/history").json()["data"]
        assert [(e["action"], e["actor"]) for e in history] == [("rollback", "canary-driver"),
                                                                ("start-canary", "test")]
        assert run["next_analysis_at"] <= verdict["created_at"]
        wait_for(lambda: len(events) >= 2, what="webhook events")
        assert [e["event"] for e in events] == ["canary.started", "canary.rolled_back"]  # first POST retried
        assert events[1]["evidence"]["verdict"] == "fail" and events[1]["state"] == "rolled_back"
        print(f"\ndegraded candidate: rolled back {took_s:.2f} s after start-canary (interval 2.0 s), "
              f"verdict {verdict['created_at'] - verdict['window_end']:.2f} s after the window closed; "
              f"load {statuses}; failed checks {sorted(failed)}; stable {_brief(evidence['stable'])}; "
              f"candidate {_brief(evidence['candidate'])}; checks {_checks(evidence)}")


def test_a_failing_candidate_hidden_behind_a_fallback_model_is_still_rolled_back(tmp_path: Path) -> None:
    config = sim_config(tmp_path / "s.db")
    config["backends"]["spare-gpu"] = {**SIM, "seed": 2}
    config["models"]["chat"] = {"targets": [{"backend": "stable-gpu", "model": "llama-3.1-8b"}],
                                "fallbacks": ["spare"]}  # the default retry policy
    config["models"]["spare"] = {"targets": [{"backend": "spare-gpu", "model": "llama-3.1-8b"}]}
    with run_gateway(config) as gw:
        ready(gw)
        gw.state.backends["candidate-gpu"].simulator.set_faults(  # type: ignore[attr-defined]
            FaultPlan(degraded=DegradedFault(slowdown=1.0, error_rate=0.3)))
        with load(gw) as statuses:
            start_canary(gw, steps=[50, 100], interval_s=2.0, min_requests=20)
            done = wait_for(lambda: finished(gw), timeout_s=30, what="the canary to finish")
        assert set(statuses) == {"200"}  # the fallback answered every request the candidate failed
        assert done["canary"]["state"] == "rolled_back"
        [verdict] = done["canary"]["verdicts"]
        evidence = verdict["evidence"]
        assert {c["name"] for c in evidence["checks"] if c["outcome"] == "fail"} == {"error_rate"}
        assert evidence["candidate"]["fallbacks"] > 0 and evidence["stable"]["fallbacks"] == 0
        assert evidence["candidate"]["failures"] == evidence["candidate"]["fallbacks"]


def test_a_healthy_candidate_is_promoted_through_every_step(tmp_path: Path) -> None:
    with run_gateway(sim_config(tmp_path / "s.db")) as gw:
        ready(gw)
        with load(gw):
            started = time.monotonic()
            start_canary(gw, steps=[25, 50, 100], interval_s=1.5, min_requests=20, max_extensions=10)
            done = wait_for(lambda: finished(gw), timeout_s=30, what="the canary to finish")
            took_s = time.monotonic() - started
        assert done["canary"]["state"] == "promoted", done["canary"]["verdicts"]
        assert done["stable"][0]["backend"] == "candidate-gpu" and done["candidate"] == []
        verdicts = list(reversed(done["canary"]["verdicts"]))
        # a window that caught fewer than min_requests on a side is extended (inconclusive), never passed
        assert all(v["verdict"] == "inconclusive" for v in verdicts if v["action"] == "extend")
        decisive = [v for v in verdicts if v["action"] != "extend"]
        assert [(v["weight"], v["verdict"], v["action"]) for v in decisive] == [
            (25.0, "pass", "advance"), (50.0, "pass", "advance"), (100.0, "pass", "promote")]
        assert decisive[2]["evidence"]["stable"]["requests"] >= 20  # at 100 %: the earlier stable baseline
        actions = [e["action"] for e in httpx.get(f"{gw.url}/admin/deployments/chat/history").json()["data"]]
        assert actions == ["promote", "canary-step", "canary-step", "start-canary"]
        print(f"\nhealthy candidate: promoted through 25/50/100 % in {took_s:.2f} s (3 intervals of 1.5 s); "
              + "; ".join(f"{v['weight']:.0f} % {v['verdict']}: {_brief(v['evidence']['candidate'])}"
                          for v in verdicts))


def test_a_tiny_sample_is_inconclusive_and_holds_instead_of_passing(tmp_path: Path) -> None:
    with run_gateway(sim_config(tmp_path / "s.db")) as gw:
        ready(gw)
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            start_canary(gw, steps=[50, 100], interval_s=0.5, min_requests=50, max_extensions=1,
                         on_exhausted="hold")
            for i in range(6):
                client.post("/v1/chat/completions", json={"model": "chat", "max_tokens": 2, "user": f"u{i}",
                                                          "messages": [{"role": "user", "content": "hi"}]})
            done = wait_for(lambda: finished(gw), timeout_s=10, what="the canary to give up")
        assert done["canary"]["state"] == "held"
        assert done["candidate_weight"] == 50  # left where it was for a person to decide
        verdicts = list(reversed(done["canary"]["verdicts"]))
        assert [(v["verdict"], v["action"]) for v in verdicts] == [("inconclusive", "extend"),
                                                                    ("inconclusive", "hold")]
        assert verdicts[1]["window_end"] - verdicts[1]["window_start"] == pytest.approx(1.0)  # extended window
        assert "(< 50)" in verdicts[1]["evidence"]["reasons"][0]
        conflict = httpx.post(f"{gw.url}/admin/deployments/chat/set-weight", json={"weight": 10})
        assert conflict.status_code == 409
        assert httpx.post(f"{gw.url}/admin/deployments/chat/promote", json={}).status_code == 200


def _brief(side: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    return (f"n={side['requests']} errors={side['failure_rate']:.1%} TTFT p99={ms(side['ttft_p99_s'])} ms "
            f"TPOT p99={ms(side['tpot_p99_s'])} ms")


def _checks(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{c['name']} {c['outcome']} p={c['p_value']:.2g}" for c in evidence["checks"]
                     if c["p_value"] is not None)
