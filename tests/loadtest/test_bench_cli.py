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


SMALL = ["--model", "fake-model", "--random-input-len", "6", "--random-output-len", "3"]


def table_rows(output: str) -> dict[str, str]:
    """The summary table's two-cell rows as {label: value}."""
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.count("│") == 3]
    return {label: value for label, value in cells if label}


@pytest.mark.parametrize(("suffix", "endpoint", "path"), [
    ("/v1", "completions", "/v1/completions"), ("/v1", "/v1/chat/completions", "/v1/chat/completions"),
    ("", "chat", "/v1/chat/completions"), ("/v1/", "chat/completions", "/v1/chat/completions")])
def test_obvious_endpoint_forms_and_a_v1_base_url_reach_the_server(upstream: tuple[Any, str], suffix: str,
                                                                   endpoint: str, path: str) -> None:
    app_, url = upstream
    result = bench(url + suffix, *SMALL, "--endpoint", endpoint, "--num-prompts", "2")
    assert result.exit_code == 0, result.output
    assert [r.path for r in app_.requests[-2:]] == [path, path]


def test_an_endpoint_that_is_no_completions_api_fails_before_sending(upstream: tuple[Any, str]) -> None:
    _, url = upstream
    result = bench(url, *SMALL, "--endpoint", "/v1/models")
    assert result.exit_code == 2 and f"{url}/v1/models" in result.output


def test_a_wrong_path_stops_at_the_first_404_and_says_where(upstream: tuple[Any, str], tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--endpoint", "/v2/chat/completions", "--num-prompts", "6", "--max-concurrency", "1",
                   "--save-result", str(out))
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "stopped early" in flat and "http_404" in flat and f"{url}/v2/chat/completions" in flat
    saved = json.loads(out.read_text())
    assert saved["num_prompts"] == 1 and saved["aborted"].startswith("http_404 from POST")


def test_a_run_where_every_request_failed_says_so_with_n_a_latencies(upstream: tuple[Any, str],
                                                                     tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "failed.json"
    result = bench(url, "--model", "fault/http_500", "--num-prompts", "3", "--random-input-len", "4",
                   "--random-output-len", "2", "--percentiles", "50,99", "--save-result", str(out))
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "no request succeeded: all 3 failed; first error: http_500" in flat and f"{url}/v1/chat/completions" in flat
    latencies = {label: value for label, value in table_rows(result.output).items() if label.endswith("(ms)")}
    assert len(latencies) == 4 * 3 and set(latencies.values()) == {"n/a"}  # mean, median, P99 of four metrics
    report = tmp_path / "failed.html"
    assert runner.invoke(app, ["bench", "report", str(out), "--out", str(report)]).exit_code == 0
    assert "No request succeeded" in report.read_text() and "n/a" in report.read_text()


def test_summary_shows_requested_and_offered_rate_and_no_p50_beside_the_median(upstream: tuple[Any, str],
                                                                                tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--num-prompts", "5", "--request-rate", "400", "--seed", "3", "--percentiles",
                   "50,90", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["request_rate"] == 400 and saved["arrival"] == "poisson"
    assert saved["offered_request_rate"] != pytest.approx(400) and saved["offered_request_rate"] > 0
    assert "Requested rate (req/s)" in result.output and "Offered rate (req/s)" in result.output
    assert f"{saved['offered_request_rate']:.2f}" in result.output
    assert "Median TTFT (ms)" in result.output and "P50 TTFT" not in result.output and "P90 TTFT" in result.output


@pytest.mark.parametrize("flags", [["--burstiness", "inf"], ["--arrival", "constant"]])
def test_constant_rate_arrivals(upstream: tuple[Any, str], tmp_path: Path, flags: list[str]) -> None:
    _, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--num-prompts", "4", "--request-rate", "500", *flags, "--save-result", str(out))
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["arrival"] == "constant" and saved["burstiness"] == "inf"
    assert saved["offered_request_rate"] == pytest.approx(500)


def test_contradictory_arrival_flags_exit_2(upstream: tuple[Any, str]) -> None:
    _, url = upstream
    assert bench(url, *SMALL, "--request-rate", "5", "--arrival", "poisson", "--burstiness", "2").exit_code == 2
    assert bench(url, *SMALL, "--ramp-up-s", "3").exit_code == 2  # a ramp needs a finite rate


def test_vllm_request_flags_reach_the_server(upstream: tuple[Any, str]) -> None:
    app_, url = upstream
    result = bench(url, *SMALL, "--num-prompts", "1", "--ignore-eos", "--extra-body", '{"top_k": 20}',
                   "--header", "X-Team: search", "--header", "x-run=7")
    assert result.exit_code == 0, result.output
    sent = app_.requests[-1]
    assert sent.body["ignore_eos"] is True and sent.body["top_k"] == 20
    assert sent.headers["x-team"] == "search" and sent.headers["x-run"] == "7"
    assert bench(url, *SMALL, "--extra-body", "[1]").exit_code == 2
    assert bench(url, *SMALL, "--header", "no separator").exit_code == 2


def test_vllm_backend_names(upstream: tuple[Any, str]) -> None:
    app_, url = upstream
    for backend, path in (("openai", "/v1/completions"), ("vllm", "/v1/completions"),
                          ("openai-chat", "/v1/chat/completions")):
        assert bench(url, *SMALL, "--backend", backend, "--num-prompts", "1").exit_code == 0
        assert app_.requests[-1].path == path
    refused = bench(url, *SMALL, "--backend", "tgi")
    assert refused.exit_code == 2 and "OpenAI streaming API only" in " ".join(refused.output.split())
    assert bench(url, *SMALL, "--backend", "openai-chat", "--endpoint", "completions").exit_code == 2


def test_result_dir_with_a_file_name_or_vllms_automatic_one(upstream: tuple[Any, str], tmp_path: Path) -> None:
    _, url = upstream
    named, automatic = tmp_path / "named", tmp_path / "auto"
    assert bench(url, *SMALL, "--num-prompts", "2", "--result-dir", str(named), "--result-filename",
                 "r.json").exit_code == 0
    assert sorted(p.name for p in named.iterdir()) == ["r.json", "r.requests.jsonl"]
    assert bench(url, *SMALL, "--num-prompts", "2", "--max-concurrency", "2", "--result-dir",
                 str(automatic)).exit_code == 0
    [saved] = automatic.glob("*.json")
    assert saved.name.startswith("openai-chat-infqps-concurrency2-fake-model-")
    assert json.loads(saved.read_text())["completed"] == 2
    refused = bench(url, *SMALL, "--save-result", "--save-detailed")
    assert refused.exit_code == 2 and "--result-dir" in refused.output


def test_multi_turn_conversations(upstream: tuple[Any, str], tmp_path: Path) -> None:
    app_, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--turns", "3", "--num-prompts", "2", "--max-concurrency", "1", "--save-result",
                   str(out))
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["completed"] == 6 and saved["turns"] == 3
    records = [json.loads(line) for line in (tmp_path / "result.requests.jsonl").read_text().splitlines()]
    assert [r["turn"] for r in records] == [0, 1, 2, 0, 1, 2]
    assert [r["input_tokens"] for r in records[:3]] == [6, 6 + 3 + 6, 6 + 3 + 6 + 3 + 6]
    assert [m["role"] for m in app_.requests[-1].body["messages"]] == ["user", "assistant"] * 2 + ["user"]
    assert bench(url, *SMALL, "--turns", "2", "--endpoint", "completions").exit_code == 2


def test_shared_prefix_workload(upstream: tuple[Any, str], tmp_path: Path) -> None:
    app_, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--random-prefix-len", "8", "--prefix-count", "2", "--num-prompts", "4",
                   "--max-concurrency", "1", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    heads = [" ".join(r.body["messages"][0]["content"].split()[:8]) for r in app_.requests[-4:]]
    assert heads[0] == heads[2] != heads[1] == heads[3]
    saved = json.loads(out.read_text())
    assert saved["total_input_tokens"] == 4 * (8 + 6) and saved["random_prefix_len"] == 8


def test_ramp_up_stretches_the_first_arrivals(upstream: tuple[Any, str], tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, *SMALL, "--num-prompts", "4", "--request-rate", "1000", "--arrival", "constant",
                   "--ramp-up-s", "0.01", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    # constant arrivals on a linear ramp: the k-th goes at sqrt(2·T·k/rate) while k/rate < T/2
    assert saved["ramp_up_s"] == 0.01 and saved["offered_request_rate"] == pytest.approx(3 / (2 * 0.01 * 3 / 1000)
                                                                                            ** 0.5)
