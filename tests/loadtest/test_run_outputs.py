"""`bench run` outputs beyond the summary: warm-up, per-request arrays, PNG plots, the HTML report, timed runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.loadtest.client import BenchTarget, error_message, run_benchmark
from sluice.loadtest.datasets import BenchRequest
from tests.support.openai_server import make_openai_upstream
from tests.support.servers import serve_app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ["--random-input-len", "12", "--random-output-len", "6"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Any, str]]:
    app_ = make_openai_upstream()
    with serve_app(app_) as url:
        yield app_, url


@pytest.fixture(autouse=True)
def healthy(upstream: tuple[Any, str]) -> None:
    upstream[0].reset()


def bench(url: str, *args: str) -> Any:
    return runner.invoke(app, ["bench", "run", "--base-url", url, "--model", "fake-model", *SMALL, *args], env=WIDE)


def test_warmup_requests_are_sent_then_left_out_of_every_metric(upstream: tuple[Any, str], tmp_path: Path) -> None:
    app_, url = upstream
    out = tmp_path / "result.json"
    result = bench(url, "--num-prompts", "5", "--warmup", "3", "--max-concurrency", "2", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    bodies = [r.body["messages"][0]["content"] for r in app_.requests]
    assert len(bodies) == 8
    assert not set(bodies[:3]) & set(bodies[3:])  # warm-up prompts are drawn apart from the measured ones
    saved = json.loads(out.read_text())
    assert (saved["warmup_requests"], saved["num_prompts"], saved["completed"]) == (3, 5, 5)
    assert saved["total_input_tokens"] == 5 * 12
    assert "ttfts" not in saved  # per-request arrays in the JSON only with --save-detailed, as in vLLM


def test_detailed_result_plots_and_a_self_contained_report(upstream: tuple[Any, str], tmp_path: Path) -> None:
    app_, url = upstream
    app_.fault, app_.fault_times = "http_400", 2
    out, plots, report = tmp_path / "result.json", tmp_path / "plots", tmp_path / "report.html"
    result = bench(url, "--num-prompts", "10", "--max-concurrency", "1", "--goodput", "ttft:60000",
                   "--percentiles", "50,90,99", "--save-result", str(out), "--save-detailed", "--plot-dir",
                   str(plots), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "http_400 (capacity)" in result.output
    saved = json.loads(out.read_text())
    assert saved["errors"][:2] == ["http_400", "http_400"] and saved["errors"][2:] == [""] * 8
    assert saved["error_details"][0].startswith("This model's maximum context length is 4096 tokens")
    assert saved["errors_by_kind"] == {"capacity": 2} and saved["error_rate"] == 0.2
    assert all(len(saved[k]) == 10 for k in ("ttfts", "itls", "e2els", "start_times", "input_lens",
                                             "output_lens", "generated_texts"))
    assert saved["generated_texts"][2] and saved["output_lens"][2] == 6 and len(saved["itls"][2]) == 5
    assert sorted(p.name for p in plots.iterdir()) == ["latency_cdf.png", "latency_over_time.png",
                                                       "throughput_over_time.png"]
    for path in plots.iterdir():
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 10_000
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "context length exceeded (server max 4096 tokens)" in html and "Request throughput (req/s)" in html
    for external in ('src="http', "<link", "<script", "@import", "url("):
        assert external not in html


def test_report_from_a_saved_file(upstream: tuple[Any, str], tmp_path: Path) -> None:
    _, url = upstream
    bare, detailed = tmp_path / "bare.json", tmp_path / "detailed.json"
    assert bench(url, "--num-prompts", "3", "--save-result", str(bare), "--no-save-requests").exit_code == 0
    assert bench(url, "--num-prompts", "3", "--save-result", str(detailed), "--save-detailed").exit_code == 0
    html_bare, html_detailed, plots = tmp_path / "bare.html", tmp_path / "detailed.html", tmp_path / "plots"
    assert runner.invoke(app, ["bench", "report", str(bare), "--out", str(html_bare)]).exit_code == 0
    assert "--save-detailed" in html_bare.read_text() and "data:image/png" not in html_bare.read_text()
    rendered = runner.invoke(app, ["bench", "report", str(detailed), "--out", str(html_detailed), "--plot-dir",
                                   str(plots), "--title", "nightly <run>"])
    assert rendered.exit_code == 0, rendered.output
    assert html_detailed.read_text().count("data:image/png;base64,") == 3
    assert "<title>nightly &lt;run&gt;</title>" in html_detailed.read_text()
    assert len(list(plots.glob("*.png"))) == 3


def test_report_of_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    for path in (tmp_path / "bad.json", tmp_path / "missing.json"):
        outcome = runner.invoke(app, ["bench", "report", str(path), "--out", str(tmp_path / "r.html")])
        assert outcome.exit_code == 2 and path.name in outcome.output


async def test_timed_run_cycles_through_the_prompts_until_the_time_is_up(upstream: tuple[Any, str]) -> None:
    app_, url = upstream
    prompts = [BenchRequest("red green blue", 3, 2), BenchRequest("one two three", 3, 2)]
    run = await run_benchmark(BenchTarget(url, "fake-model"), prompts, max_concurrency=2, duration_s=0.2)
    assert run.results and all(r.success for r in run.results)
    assert len(app_.requests) == len(run.results)
    sent = [r.body["messages"][0]["content"] for r in app_.requests]
    assert set(sent) <= {"red green blue", "one two three"}


async def test_timed_run_without_a_rate_or_a_cap_is_refused(upstream: tuple[Any, str]) -> None:
    with pytest.raises(ValueError, match="timed run"):
        await run_benchmark(BenchTarget(upstream[1], "fake-model"), [BenchRequest("x", 1, 1)], duration_s=1.0)
    assert bench(upstream[1], "--duration", "1").exit_code == 2


def test_error_messages_are_read_from_every_body_shape() -> None:
    assert error_message(b'{"error": {"message": "too long", "code": 400}}') == "too long"
    assert error_message(b'{"error": "Input validation error", "error_type": "validation"}') == (
        "Input validation error")
    assert error_message(b'{"object": "error", "message": "old vLLM"}') == "old vLLM"
    assert error_message(b"<html>Bad Gateway</html>\n") == "<html>Bad Gateway</html>"
    assert len(error_message(b"x" * 5000)) == 300
