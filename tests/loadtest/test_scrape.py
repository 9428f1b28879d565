"""The server's /metrics sampled during a run: against the simulator's vLLM metrics, and a server without them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.loadtest.scrape import MetricsSample, Scraped, ScrapeSettings, parse_metrics
from sluice.sim import MonotonicClock
from tests.sim.support import MODEL, make_simulator, serve_simulator
from tests.support.openai_server import make_openai_upstream
from tests.support.servers import serve_app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
SMALL = ["--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "6"]
EXPOSITION = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:e2e_request_latency_seconds_bucket{le="0.3",model_name="m"} 4.0
vllm:e2e_request_latency_seconds_count{model_name="m"} 9.0
sluice_requests_queued{model="a b"} 1 1712345678000
process_open_fds 12
"""


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_simulator(make_simulator(clock=MonotonicClock())) as url:
        yield url


def bench(*args: str) -> Any:
    return runner.invoke(app, ["bench", "run", *args], env=WIDE)


def test_prometheus_text_is_read_without_comments_and_buckets() -> None:
    assert parse_metrics(EXPOSITION) == {
        'vllm:num_requests_running{engine="0",model_name="m"}': 3.0,
        'vllm:num_requests_running{engine="1",model_name="m"}': 2.0,
        'vllm:e2e_request_latency_seconds_count{model_name="m"}': 9.0,
        'sluice_requests_queued{model="a b"}': 1.0, "process_open_fds": 12.0}


def test_key_series_are_summed_over_their_labels() -> None:
    scraped = Scraped(ScrapeSettings("http://h/metrics"), [MetricsSample(0.0, parse_metrics(EXPOSITION)),
                                                            MetricsSample(1.5, {"vllm:num_requests_running": 0.0})])
    assert scraped.key_series() == {"vllm:num_requests_running": [[0.0, 5.0], [1.5, 0.0]],
                                    "sluice_requests_queued": [[0.0, 1.0]]}


def test_scraping_the_simulator_stores_every_series_and_reports_the_key_ones(sim_url: str, tmp_path: Path) -> None:
    out, html = tmp_path / "run.json", tmp_path / "run.html"
    result = bench("--base-url", sim_url + "/v1", "--model", MODEL, *SMALL, "--scrape-metrics", "--scrape-interval",
                   "0.01", "--save-result", str(out), "--report", str(html))
    assert result.exit_code == 0, result.output
    assert f"scrapes of {sim_url}/metrics" in result.output
    scraped = json.loads(out.read_text())["server_metrics"]
    assert scraped["url"] == f"{sim_url}/metrics" and scraped["failed_scrapes"] == 0
    assert scraped["scrapes"] >= 2  # one as the run starts, one after its last request
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert len(scraped["series"][name]) == scraped["scrapes"]
    assert scraped["series"]["vllm:num_requests_running"][-1][1] == 0  # all done by the last scrape
    lines = [json.loads(line) for line in (tmp_path / "run.metrics.jsonl").read_text().splitlines()]
    assert len(lines) == scraped["scrapes"]
    generated = next(value for name, value in lines[-1]["values"].items()
                     if name.startswith("vllm:generation_tokens_total"))
    assert generated >= 6 * 8
    assert not any("_bucket" in name for line in lines for name in line["values"])
    assert "server_metrics.png" in html.read_text()


def test_a_server_without_metrics_only_costs_the_scrapes(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with serve_app(make_openai_upstream()) as url:
        result = bench("--base-url", url, "--model", "fake-model", *SMALL, "--scrape-metrics", "--save-result",
                       str(out))
    assert result.exit_code == 0, result.output
    scraped = json.loads(out.read_text())["server_metrics"]
    assert scraped["scrapes"] == 0 and scraped["failed_scrapes"] >= 2 and "HTTP 404" in scraped["first_error"]
    assert scraped["series"] == {} and not (tmp_path / "run.metrics.jsonl").exists()
