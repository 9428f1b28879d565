"""Running a suite through a real gateway and a scripted upstream: each case sent, scored and recorded; failed
calls recorded as errored without stopping the run; the results file written line by line and read back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluice.evals import (
    CaseResult,
    ResultsError,
    ResultsWriter,
    RunHeader,
    ScoreResult,
    Suite,
    load_results,
    load_suite,
    run_suite,
    summarize,
)
from sluice.stats import wilson
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import free_port, serve_app

SUITE = """\
name: capitals
defaults:
  scorers: [exact]
cases:
  - id: france
    input: Capital of France?
    expected: Paris
    tags: [europe]
    params: {temperature: 0, max_tokens: 8}
  - id: japan
    input: Capital of Japan?
    expected: Tokyo
    scorers: [exact, {type: contains, value: Tok}]
  - id: spain
    input: Capital of Spain?
    expected: Madrid
    tags: [europe]
"""


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    path = tmp_path / "capitals.yaml"
    path.write_text(SUITE)
    return load_suite(path)


@pytest.fixture
def upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    scripted = ScriptedUpstream(["Paris", "Tokyo", "Barcelona"])
    with serve_app(scripted.app()) as url:
        yield scripted, url


def run(suite: Suite, url: str, **options: Any) -> list[CaseResult]:
    return asyncio.run(run_suite(suite, base_url=url, model="m", concurrency=1, **options))


def test_each_case_is_sent_with_its_params_and_scored_by_each_of_its_scorers(
        suite: Suite, upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        results = run(suite, gw.url)
    assert [(result.case_id, result.passed) for result in results] == [
        ("france", True), ("japan", True), ("spain", False)]
    assert scripted.requests[0]["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert scripted.requests[0]["temperature"] == 0 and scripted.requests[0]["max_tokens"] == 8
    assert [score.type for score in results[1].scores] == ["exact", "contains"]
    spain = results[2]
    assert spain.answer == "Barcelona" and spain.scores[0].reason == "expected 'Madrid', got 'Barcelona'"
    assert spain.request_id and spain.error is None and spain.latency_s > 0
    assert (spain.prompt_tokens, spain.completion_tokens) == (10, 1)


def test_the_summary_counts_pass_rates_per_scorer_and_tag_with_wilson_intervals(
        suite: Suite, upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    _, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        summary = summarize(run(suite, gw.url, repeats=2))
    # repeat 0 gets Paris, Tokyo, Barcelona; repeat 1 gets the last text, Barcelona, for every case — france too,
    # though it is deterministic (temperature 0): the runner asks the model, never the gateway's cache
    assert (summary.overall.passed, summary.overall.total) == (2, 6)
    assert summary.overall.interval == wilson(2, 6)
    assert (summary.by_scorer["exact"].passed, summary.by_scorer["exact"].total) == (2, 6)
    assert (summary.by_scorer["contains"].passed, summary.by_scorer["contains"].total) == (1, 2)
    assert (summary.by_tag["europe"].passed, summary.by_tag["europe"].total) == (1, 4)
    assert summary.errors == 0 and summary.completion_tokens == 6
    assert summary.latency_p50_s is not None and summary.latency_p95_s is not None
    assert [result.case_id for result in summary.failed] == ["spain", "france", "japan", "spain"]


def test_a_failing_upstream_is_recorded_as_errored_and_the_run_goes_on(suite: Suite, tmp_path: Path) -> None:
    config = upstream_config(f"http://127.0.0.1:{free_port()}", tmp_path / "log.db")
    with run_gateway(config) as gw:
        results = run(suite, gw.url)
    assert len(results) == 3 and all(not result.passed and result.answer is None for result in results)
    assert all(result.error and result.error.startswith("HTTP 5") for result in results)
    assert summarize(results).errors == 3


def test_an_unreachable_gateway_is_a_connection_error_per_case(suite: Suite) -> None:
    results = run(suite, f"http://127.0.0.1:{free_port()}")
    assert [result.error.split(":")[0] for result in results if result.error] == ["connection"] * 3


def test_cases_already_done_are_skipped(suite: Suite, upstream: tuple[ScriptedUpstream, str],
                                        tmp_path: Path) -> None:
    scripted, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        results = run(suite, gw.url, done={("france", 0), ("spain", 0)})
    assert [result.case_id for result in results] == ["japan"]
    assert len(scripted.requests) == 1


def test_the_results_file_is_a_header_then_a_line_per_result_and_reads_back(
        suite: Suite, upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    _, url = upstream
    out = tmp_path / "results.jsonl"
    header = RunHeader(suite.name, suite.hash, "m", url, "2025-01-01T00:00:00+00:00", 1)
    writer = ResultsWriter.open(out, header)
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        results = run(suite, gw.url, on_result=writer.write)
    writer.close()
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[0] == {"suite": "capitals", "suite_hash": suite.hash, "model": "m", "base_url": url,
                        "started_at": "2025-01-01T00:00:00+00:00", "repeats": 1}
    assert [line["case_id"] for line in lines[1:]] == ["france", "japan", "spain"]
    assert load_results(out) == (header, results)


def test_a_bad_results_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"suite": "s", "suite_hash": "h", "model": "m", "base_url": "u", "started_at": "t", '
                    '"repeats": 1}\n{"case_id": "a"\n')
    with pytest.raises(ResultsError, match=r"results.jsonl:2: not JSON"):
        load_results(path)
    path.write_text('{"suite": "s"}\n')
    with pytest.raises(ResultsError, match=r"results.jsonl:1: not the run's header"):
        load_results(path)
    path.write_text("")
    with pytest.raises(ResultsError, match=r"results.jsonl:1: empty"):
        load_results(path)


def test_a_scorer_error_is_kept_in_the_results_file_and_older_files_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    header = '{"suite": "s", "suite_hash": "h", "model": "m", "base_url": "u", "started_at": "t", "repeats": 1}\n'
    old_score = '{"type": "exact", "value": 1.0, "passed": true, "reason": "equal"}'
    path.write_text(header + '{"case_id": "a", "repeat": 0, "answer": "x", "scores": [' + old_score + '], '
                    '"passed": true, "latency_s": 0.1}\n')
    _, [old] = load_results(path)
    assert old.scores[0].error is None
    errored = CaseResult("b", 0, "y", (ScoreResult("judge", 0.0, False, "judge error: HTTP 502: x", "HTTP 502: x"),),
                         False, 0.2)
    writer = ResultsWriter.open(path, None)
    writer.write(errored)
    writer.close()
    assert load_results(path)[1] == [old, errored]
