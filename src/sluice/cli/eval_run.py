"""Running a suite for `sluice eval run` and `sluice eval gate`: the results file (new, or resumed), the progress
bar, the runner's call; reading a results file back; the summary and failing-case tables."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sluice.cli.common import console, err_console, exit_with
from sluice.cli.eval_targets import Target
from sluice.evals import (
    CaseResult,
    GatewayUnreachable,
    PassRate,
    ResultsError,
    ResultsWriter,
    RunHeader,
    Suite,
    SuiteError,
    Summary,
    check_backend,
    check_gateway,
    load_results,
    load_suite,
    run_suite,
)

MAX_REASON_CHARS = 120


def load_suite_or_exit(path: Path) -> Suite:
    try:
        return load_suite(path)
    except SuiteError as error:
        exit_with(str(error), code=2)


def execute_run(suite: Suite, target: Target, *, out: Path, resume: bool, api_key: str | None, concurrency: int,
                repeats: int, timeout_s: float, judge_url: str | None) -> tuple[RunHeader, list[CaseResult]]:
    """Run every (case, repeat) of `suite` on `target` not already answered in `out` (with `resume`), appending
    each result as it finishes; the file's header and its results (the last of each case and repeat)."""
    done: set[tuple[str, int]] = set()
    header: RunHeader | None = RunHeader(suite.name, suite.hash, target.label, target.base_url, _now(), repeats)
    if resume and out.exists():
        previous, results = read_results(out)
        if (previous.suite_hash, previous.model) != (suite.hash, target.label):
            exit_with(f"--resume: {out} is a run of suite hash {previous.suite_hash[:12]} on model "
                      f"{previous.model!r}, not {suite.hash[:12]} on {target.label!r}; pass another --out", code=2)
        done = {(result.case_id, result.repeat) for result in results if result.error is None}  # errors: again
        header = None
    elif out.exists() and out.stat().st_size:
        exit_with(f"{out} exists: pass --resume to go on with it, or another --out", code=2)
    try:
        asyncio.run(check_backend(target.base_url, api_key=api_key) if target.raw else check_gateway(target.base_url))
    except GatewayUnreachable as error:
        hint = "is the backend up? (--target)" if target.raw else "is `sluice serve` running? (--url / SLUICE_URL)"
        exit_with(f"{error}; {hint}", code=2)
    total = len(suite.cases) * repeats - len({key for key in done if key[1] < repeats})
    writer = ResultsWriter.open(out, header)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bars:
            task = bars.add_task(f"{suite.name} on {target.label}", total=total)

            def record(result: CaseResult) -> None:
                writer.write(result)
                bars.advance(task)

            try:
                asyncio.run(run_suite(suite, base_url=target.base_url, model=target.model, api_key=api_key,
                                      concurrency=concurrency, repeats=repeats, timeout_s=timeout_s,
                                      on_result=record, done=done, headers=target.headers, params=target.params,
                                      raw=target.raw, judge_url=judge_url))
            except ValueError as error:  # a suite this target cannot run (a judge with no gateway to ask)
                exit_with(str(error), code=2)
    finally:
        writer.close()
    return read_results(out)


def read_results(path: Path) -> tuple[RunHeader, list[CaseResult]]:
    """The header and the results of a results file, the last line of each (case, repeat) winning (a resumed run
    appends the retry of an errored case after it); exit 2 when it cannot be read."""
    try:
        header, results = load_results(path)
    except ResultsError as error:
        exit_with(str(error), code=2)
    latest = {(result.case_id, result.repeat): result for result in results}
    return header, list(latest.values())


def render_summary(summary: Summary, title: str) -> None:
    table = Table(title=escape(title))
    for column in ("", "passed", "rate", "95 % interval"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("[bold]all cases[/]", *_rate(summary.overall))
    for kind, rate in summary.by_scorer.items():
        table.add_row(f"scorer {escape(kind)}", *_rate(rate))
    for tag, rate in summary.by_tag.items():
        table.add_row(f"tag {escape(tag)}", *_rate(rate))
    console.print(table)
    cost = "-" if summary.cost_usd is None else f"${summary.cost_usd:.6f}"
    scorer_errors = getattr(summary, "scorer_errors", 0)
    console.print(f"errors {summary.errors}" + (f"  scorer errors {scorer_errors}" if scorer_errors else "")
                  + f"  latency p50 {_seconds(summary.latency_p50_s)} p95 {_seconds(summary.latency_p95_s)}  "
                  f"tokens {summary.prompt_tokens:,} in / {summary.completion_tokens:,} out  cost {cost}",
                  highlight=False)


def render_failed(results: list[CaseResult]) -> None:
    if not results:
        console.print("no failing cases")
        return
    table = Table(title=f"{len(results)} failing case{'s' if len(results) != 1 else ''}")
    for column in ("case", "repeat", "scorer", "reason"):
        table.add_column(column)
    for result in results:
        if result.error is not None:
            table.add_row(escape(result.case_id), str(result.repeat), "[red]error[/]", escape(result.error))
        for score in result.scores:
            if not score.passed:
                table.add_row(escape(result.case_id), str(result.repeat), escape(score.type),
                              escape(score.reason[:MAX_REASON_CHARS]))
    console.print(table)


def _rate(rate: PassRate) -> tuple[str, str, str]:
    if rate.rate is None:
        return "0/0", "-", "-"
    low, high = rate.interval
    return f"{rate.passed}/{rate.total}", f"{rate.rate:.1%}", f"{low:.1%} - {high:.1%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


__all__ = ["execute_run", "load_suite_or_exit", "read_results", "render_failed", "render_summary"]
