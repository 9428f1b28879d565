"""Load balancing in a running gateway: concurrent streams spread over replicas; an unhealthy one gets none."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.routing.e2e import USER, chat_paths, config, sample, upstreams, wait_for
from tests.support.gateway import RunningGateway, run_gateway

TWO = {"m": {"targets": [{"backend": "a", "model": "up-model"}, {"backend": "b", "model": "up-model"}]}}


def concurrent_streams(gw: RunningGateway, count: int) -> list[str]:
    """`count` streams, all held open at once (each waits for the others after its first frame)."""
    everyone_started = threading.Barrier(count, timeout=30)

    def one() -> str:
        with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=30,
                          json={"model": "m", "messages": USER, "stream": True}) as response:
            lines = response.iter_lines()
            first = next(lines)
            everyone_started.wait()
            return "\n".join(line for line in [first, *lines] if line)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def test_least_outstanding_spreads_concurrent_streams_evenly(tmp_path: Path) -> None:
    with (upstreams("a", "b", token_delay_s=0.05) as ups,
          run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, TWO)) as gw):
        bodies = concurrent_streams(gw, 10)
        outstanding = sample(gw, "sluice_target_outstanding_requests", target="a", upstream_model="up-model")
    assert all(body.endswith("data: [DONE]") for body in bodies)
    assert (chat_paths(ups["a"][0]), chat_paths(ups["b"][0])) == (5, 5)
    assert outstanding == 0


def test_an_unhealthy_replica_gets_no_traffic_until_it_recovers(tmp_path: Path) -> None:
    with upstreams("a", "b", token_delay_s=0.05) as ups:
        sick = ups["a"][0]
        cfg = config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, TWO,
                     routing={"health_check": {"interval_s": 0.05, "unhealthy_after": 2, "healthy_after": 1}})
        with run_gateway(cfg) as gw:
            labels = {"target": "a", "upstream_model": "up-model"}
            sick.fault = "http_500"  # its health endpoint fails too
            wait_for(lambda: sample(gw, "sluice_target_healthy", **labels) == 0)
            concurrent_streams(gw, 6)
            assert chat_paths(sick) == 0

            sick.fault = None
            wait_for(lambda: sample(gw, "sluice_target_healthy", **labels) == 1)
            concurrent_streams(gw, 6)
            assert chat_paths(sick) == 3
            assert sample(gw, "sluice_health_checks_total", **labels, result="failed") >= 2
