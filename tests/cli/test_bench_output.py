"""The bench's live progress: req/s, tok/s and recent latency beside each bar."""

from __future__ import annotations

from rich.progress import Progress

from sluice.cli.bench_output import LiveColumn, RunBar
from sluice.loadtest.live import LiveStats
from sluice.loadtest.metrics import RequestResult


def ok(ttft_s: float, e2e_s: float, tokens: int) -> RequestResult:
    return RequestResult(success=True, prompt_tokens=4, output_tokens=tokens, ttft_s=ttft_s, e2e_s=e2e_s)


def test_live_figures_are_rates_over_the_elapsed_time_and_recent_medians() -> None:
    stats = LiveStats()
    assert stats.line(None) == "" and stats.line(2.0) == "0.0 req/s · 0 tok/s"
    for result in (ok(0.05, 0.5, 100), ok(0.07, 0.7, 100), ok(0.09, 1.9, 100),
                   RequestResult(success=False, prompt_tokens=4, error="http_500")):
        stats.record(result)
    assert stats.line(2.0) == "1.5 req/s · 150 tok/s · TTFT p50 70 ms · E2EL p50 700 ms · 1 failed"
    stats.record(ok(0.1, 3.0, 100))
    assert "E2EL p50 1.30 s" in stats.line(2.0)


def test_the_bar_shows_the_live_figures_of_its_requests() -> None:
    with Progress(LiveColumn(), auto_refresh=False, disable=True) as bars:
        bar = RunBar(bars, "requests", 2)
        bar.done(ok(0.02, 0.2, 10))
        task = bars.tasks[0]
        assert task.completed == 1
        text = LiveColumn().render(task).plain
        assert "req/s" in text and "tok/s" in text and "TTFT p50 20 ms" in text
        bar.reset("step 2", 5)
        assert "TTFT" not in LiveColumn().render(bars.tasks[0]).plain and bars.tasks[0].total == 5
