"""One run, two instruments: the bench client's per-request TTFT / E2E / ITL against the gateway's Prometheus
histograms of the same requests, agreeing within the histograms' bucket resolution.

The two measure the same intervals from different vantage points, so their values are related by definition:
- TTFT: the client starts its clock before the gateway sees the request and reads the first text after the
  gateway received it from the backend, so client ≥ gateway, always.
- E2E: the client stops at reading `[DONE]`; the gateway stamps its E2E just after handing `[DONE]` to the
  socket, a few Python statements later, so the gateway may exceed the client by that bookkeeping only.
- both: client − gateway is the request's trip in plus the chunk's trip out over loopback; bounded by a
  generous cap that only a stalled machine could break.
With g_i the gateway's value and c_i the client's (c_i − cap ≤ g_i ≤ c_i + slack), every bucket bound b obeys
    #{c_i ≤ b − slack}  ≤  histogram count(le=b)  ≤  #{c_i ≤ b + cap}
and the histogram's count is the number of requests, its sum between Σc − n·cap and Σc + n·slack.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.loadtest.client import BenchTarget, run_benchmark
from sluice.loadtest.datasets import BenchRequest
from sluice.loadtest.metrics import RequestResult
from sluice.sim import MonotonicClock
from tests.sim.support import MODEL as SIM_MODEL
from tests.sim.support import make_simulator, serve_simulator
from tests.support.gateway import RunningGateway, run_gateway, upstream_config

CAP_S = 0.5  # client − gateway for one request: loopback trips in and out, plus any scheduling stall
E2E_SLACK_S = 0.05  # gateway − client for E2E: the gateway's statements between writing [DONE] and stamping
TTFT = "sluice_time_to_first_token_seconds"
E2E = "sluice_e2e_request_latency_seconds"
ITL = "sluice_inter_token_latency_seconds"
REQUESTS = [BenchRequest(f"cross-check prompt {i}: " + "word " * (8 + 4 * i), 12 + 4 * i, 8 + 2 * (i % 5))
            for i in range(24)]


@dataclass(frozen=True)
class Histogram:
    cumulative: dict[float, float]  # bucket bound (le) -> observations ≤ it, +Inf included
    count: float
    sum_s: float


def scrape(url: str, name: str, model: str) -> Histogram:
    """One model's series of a histogram from the gateway's /metrics (prometheus_client's own parser)."""
    cumulative: dict[float, float] = {}
    count = sum_s = math.nan
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == f"{name}_bucket":
                cumulative[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{name}_count":
                count = sample.value
            elif sample.name == f"{name}_sum":
                sum_s = sample.value
    return Histogram(cumulative, count, sum_s)


def bucket_disagreements(client_s: Sequence[float], histogram: Histogram, *, slack_s: float,
                         cap_s: float) -> list[str]:
    """The bucket bounds where no per-request pairing with c − cap ≤ g ≤ c + slack explains the counts."""
    wrong = []
    for bound, observed in sorted(histogram.cumulative.items()):
        at_least = sum(value <= bound - slack_s for value in client_s)
        at_most = sum(value <= bound + cap_s for value in client_s)
        if not at_least <= observed <= at_most:
            wrong.append(f"le={bound}: histogram {observed:g}, client values allow {at_least}..{at_most}")
    return wrong


@pytest.fixture(params=["in-process sim", "sim over HTTP"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningGateway]:
    """The gateway serving model `m` from the simulator: as a `sim` backend in its own loop, or proxying to a
    `sluice sim` server on loopback (one more hop, the same relations)."""
    db = tmp_path / "log.db"
    if request.param == "in-process sim":
        config = {"store": {"url": f"sqlite:///{db}"},
                  "backends": {"sim": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm",
                                       "max_model_len": 4096}},
                  "models": {"m": {"targets": [{"backend": "sim", "model": "llama-3.1-8b"}]}}}
        with run_gateway(config) as gw:
            yield gw
        return
    with serve_simulator(make_simulator(clock=MonotonicClock())) as sim_url:
        config = upstream_config(sim_url, db, models={"m": {"targets": [{"backend": "up", "model": SIM_MODEL}]}})
        with run_gateway(config) as gw:
            yield gw


async def test_bench_and_gateway_histograms_agree_within_bucket_resolution(gateway: RunningGateway) -> None:
    run = await run_benchmark(BenchTarget(gateway.url, "m"), REQUESTS, max_concurrency=6)
    results: list[RequestResult] = run.results
    assert all(result.success for result in results), [result.error for result in results]
    ttft, e2e = scrape(gateway.url, TTFT, "m"), scrape(gateway.url, E2E, "m")
    client_ttft = [result.ttft_s for result in results]
    client_e2e = [result.e2e_s for result in results]

    assert bucket_disagreements(client_ttft, ttft, slack_s=0.0, cap_s=CAP_S) == []
    assert bucket_disagreements(client_e2e, e2e, slack_s=E2E_SLACK_S, cap_s=CAP_S) == []
    n = len(results)
    assert ttft.count == e2e.count == n
    assert sum(client_ttft) - n * CAP_S <= ttft.sum_s <= sum(client_ttft)
    assert sum(client_e2e) - n * CAP_S <= e2e.sum_s <= sum(client_e2e) + n * E2E_SLACK_S


async def test_both_count_the_same_inter_token_gaps(gateway: RunningGateway) -> None:
    run = await run_benchmark(BenchTarget(gateway.url, "m"), REQUESTS[:8], max_concurrency=4)
    itl = scrape(gateway.url, ITL, "m")
    client_gaps = [gap for result in run.results for gap in result.itl_s]
    # One gap per pair of text chunks on both sides; each request's gaps add up to its first-to-last-text span,
    # which the two ends see shifted by their trips (first and last chunk alike), within the cap.
    assert itl.count == len(client_gaps) == sum(request.output_len - 1 for request in REQUESTS[:8])
    assert abs(itl.sum_s - sum(client_gaps)) <= len(run.results) * CAP_S
