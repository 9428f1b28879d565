"""`sluice eval …`: run an eval suite against a model on a gateway, keeping each case's result, and show a run's
summary (docs/evals.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sluice.cli.common import console, err_console, exit_with
from sluice.evals import (
    CaseResult,
    GatewayUnreachable,
    PassRate,
    ResultsError,
    ResultsWriter,
    RunHeader,
    SuiteError,
    Summary,
    check_gateway,
    load_results,
    load_suite,
    run_suite,
    summarize,
)

eval_app = typer.Typer(help="Eval suites: run one against a model, show a run's results.", no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:4000"
MAX_REASON_CHARS = 120


@eval_app.command("run")
def run(suite_path: Annotated[Path, typer.Argument(metavar="SUITE", help="The suite: a .yaml, .yml or .jsonl file.")],
        model: Annotated[str, typer.Option("--model", "-m", help="The gateway's public model name to evaluate.")],
        url: Annotated[str, typer.Option("--url", envvar="SLUICE_URL", help="The gateway's base URL.")] = DEFAULT_URL,
        api_key: Annotated[str | None, typer.Option("--api-key", envvar="SLUICE_API_KEY", show_default=False,
                                                    help="A key the gateway accepts.")] = None,
        concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Cases in flight at once.")] = 4,
        repeats: Annotated[int, typer.Option("--repeats", min=1, help="Times each case is run.")] = 1,
        out: Annotated[Path, typer.Option("--out", help="The results file (JSONL).")] = Path("results.jsonl"),
        resume: Annotated[bool, typer.Option("--resume", help="Skip the cases already recorded in --out.")] = False,
        timeout_s: Annotated[float, typer.Option("--timeout", min=1, help="Seconds per request.")] = 120) -> None:
    """Run every case of SUITE against --model and append each result to --out as it finishes."""
    try:
        suite = load_suite(suite_path)
    except SuiteError as error:
        exit_with(str(error), code=2)
    done: set[tuple[str, int]] = set()
    header: RunHeader | None = RunHeader(suite.name, suite.hash, model, url, _now(), repeats)
    if resume and out.exists():
        previous, results = _read(out)
        if (previous.suite_hash, previous.model) != (suite.hash, model):
            exit_with(f"--resume: {out} is a run of suite hash {previous.suite_hash[:12]} on model "
                      f"{previous.model!r}, not {suite.hash[:12]} on {model!r}; pass another --out", code=2)
        done = {(result.case_id, result.repeat) for result in results}
        header = None
    elif out.exists() and out.stat().st_size:
        exit_with(f"{out} exists: pass --resume to go on with it, or another --out", code=2)
    try:
        asyncio.run(check_gateway(url))
    except GatewayUnreachable as error:
        exit_with(f"{error}; is `sluice serve` running? (--url / SLUICE_URL)", code=2)
    total = len(suite.cases) * repeats - len({key for key in done if key[1] < repeats})
    writer = ResultsWriter.open(out, header)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bars:
            task = bars.add_task(f"{suite.name} on {model}", total=total)

            def record(result: CaseResult) -> None:
                writer.write(result)
                bars.advance(task)

            asyncio.run(run_suite(suite, base_url=url, model=model, api_key=api_key, concurrency=concurrency,
                                  repeats=repeats, timeout_s=timeout_s, on_result=record, done=done))
    finally:
        writer.close()
    _, results = _read(out)
    _render(summarize(results), f"{suite.name} on {model}: {out}")


@eval_app.command("show")
def show(results_path: Annotated[Path, typer.Argument(metavar="RESULTS", help="A results file of `eval run`.")],
         failed: Annotated[bool, typer.Option("--failed", help="List the failing cases too.")] = False) -> None:
    """A run's summary, and with --failed its failing cases (id, scorer, reason)."""
    header, results = _read(results_path)
    summary = summarize(results)
    _render(summary, f"{header.suite} on {header.model} (started {header.started_at})")
    if failed:
        _render_failed(summary.failed)


def _read(path: Path) -> tuple[RunHeader, list[CaseResult]]:
    try:
        return load_results(path)
    except ResultsError as error:
        exit_with(str(error), code=2)


def _render(summary: Summary, title: str) -> None:
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
    console.print(f"errors {summary.errors}  latency p50 {_seconds(summary.latency_p50_s)} "
                  f"p95 {_seconds(summary.latency_p95_s)}  tokens {summary.prompt_tokens:,} in / "
                  f"{summary.completion_tokens:,} out  cost {cost}", highlight=False)


def _render_failed(results: list[CaseResult]) -> None:
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


__all__ = ["eval_app"]
