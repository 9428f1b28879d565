"""`sluice bench run` end to end against the loopback fake upstream: summary table, vLLM-named JSON, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.cli.bench import parse_goodput, parse_percentiles
from tests.support.openai_server import make_openai_upstream
from tests.support.servers import serve_app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Any, str]]:
    app_ = make_openai_upstream()
    with serve_app(app_) as url:
        yield app_, url


def bench(url: str, *args: str) -> Any:
    return runner.invoke(app, ["bench", "run", "--base-url", url, *args], env=WIDE)


def test_run_prints_summary_and_saves_vllm_named_json(upstream: tuple[Any, str], tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, "--model", "fake-model", "--num-prompts", "8", "--random-input-len", "12",
                   "--random-output-len", "6", "--max-concurrency", "3", "--request-rate", "500",
                   "--goodput", "ttft:60000 e2el:60000", "--percentiles", "50,90,99", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    assert "Serving Benchmark Result" in result.output and "P90 TTFT (ms)" in result.output
    saved = json.loads(out.read_text())
    assert saved["completed"] == 8 and saved["failed"] == 0
    assert saved["total_input_tokens"] == 8 * 12
    assert saved["total_output_tokens"] == 8 * 6  # echo of a 12-word prompt cut at 6, counted by usage
    assert saved["request_goodput"] == pytest.approx(saved["request_throughput"])
    for key in ("request_throughput", "output_throughput", "total_token_throughput", "mean_ttft_ms",
                "median_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "mean_itl_ms", "p90_e2el_ms", "duration"):
        assert isinstance(saved[key], float), key
    assert saved["max_concurrency"] == 3 and saved["model_id"] == "fake-model"


def test_all_failed_run_exits_1_and_shows_error_classes(upstream: tuple[Any, str]) -> None:
    _, url = upstream
    result = bench(url, "--model", "fault/http_500", "--num-prompts", "3", "--random-input-len", "4",
                   "--random-output-len", "2")
    assert result.exit_code == 1
    assert "http_500" in result.output


def test_jsonl_dataset_and_completions_endpoint(upstream: tuple[Any, str], tmp_path: Path) -> None:
    app_, url = upstream
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "red green blue", "output_len": 2}\n')
    result = bench(url, "--model", "fake-model", "--endpoint", "/v1/completions", "--num-prompts", "1",
                   "--dataset-name", "jsonl", "--dataset-path", str(path))
    assert result.exit_code == 0, result.output
    assert app_.requests[-1].body["prompt"] == "red green blue" and app_.requests[-1].body["max_tokens"] == 2


def test_bad_arguments_exit_2_with_a_message(upstream: tuple[Any, str]) -> None:
    _, url = upstream
    assert bench(url, "--model", "m", "--goodput", "latency:5").exit_code == 2
    assert bench(url, "--model", "m", "--dataset-name", "sharegpt").exit_code == 2


def test_flag_parsers() -> None:
    assert parse_goodput(["ttft:500 tpot:50", "e2el:2000"]) == {"ttft": 500.0, "tpot": 50.0, "e2el": 2000.0}
    assert parse_percentiles("50,99.9") == [50.0, 99.9]
    with pytest.raises(ValueError):
        parse_goodput(["ttft"])
    with pytest.raises(ValueError):
        parse_percentiles("101")
