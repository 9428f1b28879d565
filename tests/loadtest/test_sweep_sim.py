"""`bench sweep` against a real simulator on loopback: a latency break, the context-length wall, server faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.loadtest.client import BenchTarget
from sluice.loadtest.datasets import DatasetSpec
from sluice.loadtest.failures import FailureKind
from sluice.loadtest.runner import LoadSettings
from sluice.loadtest.sweep import SweepDimension, SweepPlan, run_sweep, sweep_outcome
from sluice.sim import (
    ErrorFault,
    FaultPlan,
    LatencySpikeFault,
    LinearStepCost,
    MonotonicClock,
    RefuseFault,
    SchedulerConfig,
    Simulator,
)
from tests.sim.support import serve_simulator

MODEL = "sim-llama-3.1-8b"
MAX_MODEL_LEN = 256
# One sequence at a time, 8 ms a step: a request of 8 tokens holds the engine ~64 ms, so at concurrency 4 the
# last in line waits ~3 requests for its first token while at concurrency 1 nobody waits.
COST = LinearStepCost(kv_blocks_total=256, max_model_len=MAX_MODEL_LEN, overhead_s=0.008)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def simulator(faults: FaultPlan | None = None) -> Simulator:
    config = SchedulerConfig(max_num_seqs=1, max_num_batched_tokens=512, max_model_len=MAX_MODEL_LEN)
    return Simulator(COST, config, served_model_name=MODEL, tokenizer_model="llama-3.1-8b", faults=faults,
                     clock=MonotonicClock(), description="bench sweep test cost model")


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_simulator(simulator()) as url:
        yield url


def plan(dimension: SweepDimension, values: tuple[float, ...], *, slos: dict[str, float] | None = None,
         keep_going: bool = False, max_concurrency: int | None = None) -> SweepPlan:
    return SweepPlan(dimension, values, DatasetSpec(input_len=16, output_len=8),
                     LoadSettings(num_prompts=8, max_concurrency=max_concurrency), slos or {}, slo_percentile=99,
                     max_error_rate=0.01, keep_going=keep_going)


async def test_concurrency_sweep_breaks_on_ttft_when_requests_queue(sim_url: str) -> None:
    steps = await run_sweep(BenchTarget(sim_url, MODEL), plan(SweepDimension.CONCURRENCY, (1, 4, 16),
                                                               slos={"ttft": 60}), percentiles=[50, 99])
    assert [s.value for s in steps] == [1, 4]  # stops at the first failing step
    outcome = sweep_outcome(steps)
    assert (outcome.holding, outcome.broke_at, outcome.kind) == (1, 4, FailureKind.LATENCY)
    assert outcome.reason and outcome.reason.startswith("P99 TTFT ")
    assert [s.result["max_concurrency"] for s in steps] == [1, 4]
    assert all(s.result["completed"] == 8 and s.result["failed"] == 0 for s in steps)
    assert steps[1].result["p99_ttft_ms"] > steps[0].result["p99_ttft_ms"]


async def test_input_len_sweep_hits_the_context_limit_and_says_so(sim_url: str) -> None:
    steps = await run_sweep(BenchTarget(sim_url, MODEL), plan(SweepDimension.INPUT_LEN, (32, 128, 512),
                                                               max_concurrency=4), percentiles=[99])
    outcome = sweep_outcome(steps)
    assert (outcome.holding, outcome.broke_at, outcome.kind) == (128, 512, FailureKind.CAPACITY)
    assert outcome.reason and f"context length exceeded (server max {MAX_MODEL_LEN} tokens)" in outcome.reason
    broken = steps[-1].result
    assert broken["errors_by_class"] == {"http_400": 8} and broken["errors_by_kind"] == {"capacity": 8}
    assert [s.result["random_input_len"] for s in steps] == [32, 128, 512]


@pytest.mark.parametrize(("faults", "kind"), [
    (FaultPlan(errors=(ErrorFault(status=503, rate=0.5),), seed=3), FailureKind.SERVER_ERROR),
    (FaultPlan(refuse=RefuseFault(rate=1.0)), FailureKind.CONNECTION),
    (FaultPlan(latency_spike=LatencySpikeFault(rate=1.0, seconds=0.5)), FailureKind.TIMEOUT),
])
async def test_server_faults_are_classified(faults: FaultPlan, kind: FailureKind) -> None:
    with serve_simulator(simulator(faults)) as url:
        target = BenchTarget(url, MODEL, timeout_s=0.2)
        steps = await run_sweep(target, plan(SweepDimension.CONCURRENCY, (2, 4), keep_going=True),
                                percentiles=[99])
    assert len(steps) == 2  # --keep-going runs every step
    outcome = sweep_outcome(steps)
    assert (outcome.holding, outcome.broke_at, outcome.kind) == (None, 2, kind)
    assert outcome.reason and outcome.reason.startswith("error rate ")


def test_cli_sweep_saves_one_json_plots_and_a_report(sim_url: str, tmp_path: Path) -> None:
    saved, plots, report = tmp_path / "sweep.json", tmp_path / "plots", tmp_path / "report.html"
    outcome = runner.invoke(app, [
        "bench", "sweep", "--base-url", sim_url, "--model", MODEL, "--sweep", "concurrency", "--values", "1..16*4",
        "--num-prompts", "8", "--random-input-len", "16", "--random-output-len", "8", "--goodput", "ttft:60",
        "--warmup", "2", "--save-result", str(saved), "--save-detailed", "--plot-dir", str(plots),
        "--report", str(report)], env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    assert "largest concurrency holding the SLO: 1" in outcome.output
    assert "broke at concurrency 4 because latency: P99 TTFT" in outcome.output
    document: dict[str, Any] = json.loads(saved.read_text())
    assert document["warmup_requests"] == 2 and document["sweep"]["values"] == [1, 4, 16]
    assert (document["sweep"]["largest_passing"], document["sweep"]["broke_at"]) == (1, 4)
    assert [step["sweep_value"] for step in document["steps"]] == [1, 4]
    for step in document["steps"]:  # each step is a whole vLLM-style result, per-request arrays included
        assert step["num_prompts"] == 8 and step["model_id"] == MODEL and len(step["ttfts"]) == 8
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["step_broke_4_latency_cdf.png", "step_holding_1_latency_cdf.png", "sweep_latency.png",
                     "sweep_throughput.png"]
    for path in plots.iterdir():
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 10_000
    html = report.read_text()
    assert "largest concurrency holding the SLO: 1" in html and html.count("data:image/png;base64,") == 4

    again = tmp_path / "again.html"
    rendered = runner.invoke(app, ["bench", "report", str(saved), "--out", str(again)])
    assert rendered.exit_code == 0, rendered.output
    assert again.read_text().count("data:image/png;base64,") == 4


def test_cli_sweep_where_nothing_holds_exits_1(sim_url: str) -> None:
    outcome = runner.invoke(app, [
        "bench", "sweep", "--base-url", sim_url, "--model", MODEL, "--sweep", "input-len", "--values", "300,600",
        "--num-prompts", "2", "--random-output-len", "8"], env={"COLUMNS": "200"})
    assert outcome.exit_code == 1
    assert "no input-len step held the SLO" in outcome.output
    assert "capacity" in outcome.output and "context length exceeded" in outcome.output


@pytest.mark.parametrize("args", [["--sweep", "memory", "--values", "1,2"], ["--sweep", "concurrency", "--values",
                                  "4,2"], ["--sweep", "input-len", "--values", "1,2", "--dataset-name", "jsonl"]])
def test_cli_sweep_bad_arguments_exit_2(sim_url: str, args: list[str]) -> None:
    outcome = runner.invoke(app, ["bench", "sweep", "--base-url", sim_url, "--model", MODEL, *args])
    assert outcome.exit_code == 2
