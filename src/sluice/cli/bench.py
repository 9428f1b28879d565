"""`sluice bench`: run, sweep, report and compare load tests of OpenAI-compatible servers (vLLM's metrics)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from sluice.cli.common import console, err_console
from sluice.loadtest.metrics import SLO_METRICS

if TYPE_CHECKING:
    from sluice.loadtest.compare import Delta
    from sluice.loadtest.metrics import RequestResult
    from sluice.loadtest.sweep import SweepPlan, SweepStep

bench_app = typer.Typer(help="Load-test an OpenAI-compatible server (vLLM `bench serve` metrics): run, sweep, "
                        "report, compare.", no_args_is_help=True)

# Options shared by `run` and `sweep` (one definition, one help text).
BASE_URL = typer.Option(..., "--base-url", help="Server root, e.g. http://127.0.0.1:8000 (the endpoint is appended).")
MODEL = typer.Option(..., "--model", help="Model name sent in each request; also picks the tokenizer used to count "
                     "prompt tokens.")
ENDPOINT = typer.Option("/v1/chat/completions", "--endpoint", help="API path: /v1/chat/completions or /v1/completions.")
REQUEST_RATE = typer.Option(math.inf, "--request-rate", help="Requests per second; inf sends all at once. Arrivals "
                            "are Poisson (or Gamma with --burstiness).")
BURSTINESS = typer.Option(1.0, "--burstiness", help="Gamma shape of the arrival gaps: 1 is Poisson, < 1 burstier, "
                          "> 1 more uniform. Only with a finite --request-rate.")
MAX_CONCURRENCY = typer.Option(None, "--max-concurrency", min=1, help="Most requests in flight at once "
                               "(default: unlimited).")
DURATION = typer.Option(None, "--duration", min=0.001, help="Timed run: keep sending (cycling through the "
                        "--num-prompts prompts) for this many seconds, then let the requests in flight finish. Needs "
                        "a finite --request-rate or a --max-concurrency.")
DATASET_NAME = typer.Option("random", "--dataset-name", help="random, sharegpt or jsonl.")
DATASET_PATH = typer.Option(None, "--dataset-path", help="ShareGPT JSON or JSONL of {\"prompt\": ..., "
                            "\"output_len\"?: ...} objects.")
INPUT_LEN = typer.Option(1024, "--random-input-len", min=1, help="random: prompt length in tokens.")
OUTPUT_LEN = typer.Option(128, "--random-output-len", min=1, help="random: max output tokens; jsonl: the default "
                          "when a line sets no output_len.")
RANGE_RATIO = typer.Option(0.0, "--random-range-ratio", min=0.0, max=0.999,
                           help="random: lengths drawn uniformly in [L·(1−r), L·(1+r)].")
SHAREGPT_OUTPUT_LEN = typer.Option(None, "--sharegpt-output-len", min=1,
                                   help="sharegpt: fixed max output tokens instead of the reply's.")
SEED = typer.Option(0, "--seed", help="Seed of the dataset sampling and the arrival gaps.")
GOODPUT = typer.Option([], "--goodput", help="SLOs as METRIC:MS (ttft, tpot, e2el), e.g. --goodput 'ttft:500 "
                       "tpot:50'; goodput counts requests meeting all.")
PERCENTILES = typer.Option("99", "--metric-percentiles", "--percentiles",
                           help="Comma-separated percentiles to report, e.g. 50,90,95,99.")
WARMUP = typer.Option(0, "--warmup", min=0, help="Send this many requests first (other prompts, same concurrency "
                      "cap) and discard them: they count in no metric; the result records `warmup_requests`.")
TIMEOUT = typer.Option(6 * 3600.0, "--timeout", min=0.001, help="Seconds before a request is given up "
                       "(classified `timeout`).")
SAVE_RESULT = typer.Option(None, "--save-result", help="Write the results as JSON (vLLM's field names) to this file.")
SAVE_DETAILED = typer.Option(False, "--save-detailed", help="Keep per-request arrays in the JSON (ttfts, itls, e2els, "
                             "start_times, input_lens, output_lens, generated_texts, errors): `bench report` can then "
                             "draw the run plots from the file.")
PLOT_DIR = typer.Option(None, "--plot-dir", help="Write PNG plots to this directory.")
REPORT = typer.Option(None, "--report", help="Write a self-contained HTML report (tables, errors, plots) to this file.")
API_KEY = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="Bearer token (default: $OPENAI_API_KEY).")


def parse_goodput(values: list[str]) -> dict[str, float]:
    """`ttft:500 tpot:50` (one or several --goodput values, space-separated) -> {"ttft": 500.0, ...} in ms."""
    slos: dict[str, float] = {}
    for item in " ".join(values).split():
        name, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"goodput item {item!r} is not METRIC:MS")
        if name not in SLO_METRICS:
            raise ValueError(f"goodput metric {name!r} is not one of {', '.join(SLO_METRICS)}")
        slos[name] = float(value)
        if slos[name] < 0:
            raise ValueError(f"goodput SLO for {name} must not be negative")
    return slos


def parse_percentiles(text: str) -> list[float]:
    values = [float(p) for p in text.split(",") if p.strip()]
    if not values or any(not 0 <= p <= 100 for p in values):
        raise ValueError("percentiles must be comma-separated numbers in [0, 100]")
    return values


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(2)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


@bench_app.command("run")
def run(base_url: str = BASE_URL, model: str = MODEL, endpoint: str = ENDPOINT,
        num_prompts: int = typer.Option(1000, "--num-prompts", min=1, help="Number of requests to send (with "
                                        "--duration: the pool of prompts cycled through)."),
        request_rate: float = REQUEST_RATE, burstiness: float = BURSTINESS,
        max_concurrency: int | None = MAX_CONCURRENCY, duration: float | None = DURATION,
        dataset_name: str = DATASET_NAME, dataset_path: Path | None = DATASET_PATH,
        random_input_len: int = INPUT_LEN, random_output_len: int = OUTPUT_LEN, random_range_ratio: float = RANGE_RATIO,
        sharegpt_output_len: int | None = SHAREGPT_OUTPUT_LEN, seed: int = SEED, goodput: list[str] = GOODPUT,
        percentiles: str = PERCENTILES, warmup: int = WARMUP, timeout: float = TIMEOUT,
        save_result: Path | None = SAVE_RESULT, save_detailed: bool = SAVE_DETAILED, plot_dir: Path | None = PLOT_DIR,
        report: Path | None = REPORT, api_key: str | None = API_KEY) -> None:
    """Benchmark serving: send NUM_PROMPTS streaming requests and report TTFT, TPOT, ITL, E2EL and throughput.

    Exit status: 0 when at least one request completed, 1 when none did, 2 for bad arguments or dataset files.
    """
    from sluice.loadtest.client import BenchTarget, run_async
    from sluice.loadtest.datasets import DatasetError, DatasetSpec, make_requests
    from sluice.loadtest.runner import LoadSettings, measure, run_config, warm_up, warmup_requests

    spec = DatasetSpec(dataset_name, dataset_path, random_input_len, random_output_len, random_range_ratio,
                       sharegpt_output_len)
    settings = LoadSettings(num_prompts, request_rate, burstiness, max_concurrency, duration, seed)
    try:
        slos, chosen = parse_goodput(goodput), parse_percentiles(percentiles)
        settings.check()
        requests = make_requests(spec, num_prompts, model=model, seed=seed)
        warm = warmup_requests(spec, warmup, model=model, seed=seed, fallback=requests) if warmup else []
    except (ValueError, DatasetError) as exc:
        raise _fail(str(exc)) from None

    target = BenchTarget(base_url, model, endpoint=endpoint, api_key=api_key, timeout_s=timeout)
    with _progress() as progress:

        async def go() -> tuple[int, dict[str, Any]]:
            warmed = progress.add_task("warm-up", total=len(warm), visible=bool(warm))
            outcome = await warm_up(target, warm, max_concurrency, lambda _: progress.advance(warmed))
            measured = progress.add_task("requests", total=None if duration else len(requests))
            result = await measure(target, requests, settings, percentiles=chosen, slos_ms=slos,
                                   on_result=lambda _: progress.advance(measured))
            return outcome.failed, result

        warm_failed, result = run_async(go())
    if warm_failed:
        console.print(f"[yellow]warm-up:[/] {warm_failed} of {len(warm)} requests failed")
    document = {**run_config(target, spec, settings, slos), "warmup_requests": len(warm), **result}
    console.print(_summary_table(document))
    _write_outputs(document, save_result, save_detailed, plot_dir, report, sweep=False)
    if result["completed"] == 0:
        raise typer.Exit(1)


@bench_app.command("sweep")
def sweep(base_url: str = BASE_URL, model: str = MODEL, endpoint: str = ENDPOINT,
          dimension: str = typer.Option(..., "--sweep", help="What to step: concurrency (--max-concurrency), rate "
                                        "(--request-rate, req/s) or input-len (--random-input-len: the context / "
                                        "memory boundary test)."),
          values: str = typer.Option(..., "--values", help="Steps: a list 1,2,4,8; START..MAX*FACTOR (1..64*2 = "
                                     "1,2,4,...,64); or START..MAX+STEP (512..4096+512)."),
          num_prompts: int = typer.Option(200, "--num-prompts", min=1, help="Requests per step (with --duration: "
                                          "the pool of prompts cycled through)."),
          request_rate: float = REQUEST_RATE, burstiness: float = BURSTINESS,
          max_concurrency: int | None = MAX_CONCURRENCY, duration: float | None = DURATION,
          dataset_name: str = DATASET_NAME, dataset_path: Path | None = DATASET_PATH, random_input_len: int = INPUT_LEN,
          random_output_len: int = OUTPUT_LEN, random_range_ratio: float = RANGE_RATIO,
          sharegpt_output_len: int | None = SHAREGPT_OUTPUT_LEN, seed: int = SEED, goodput: list[str] = GOODPUT,
          slo_percentile: float = typer.Option(99.0, "--slo-percentile", min=0.0, max=100.0, help="A step holds "
                                               "the SLO when this percentile of each --goodput metric is within it "
                                               "(99: P99 TTFT <= the TTFT SLO, ...)."),
          max_error_rate: float = typer.Option(0.01, "--max-error-rate", min=0.0, max=1.0, help="A step fails when "
                                               "more than this fraction of its requests fail."),
          keep_going: bool = typer.Option(False, "--keep-going/--stop-at-failure", help="Run every step, or stop "
                                          "at the first failing one (default)."),
          percentiles: str = typer.Option("50,90,99", "--metric-percentiles", "--percentiles",
                                          help="Percentiles to report per step (the SLO percentile is added)."),
          warmup: int = WARMUP, timeout: float = TIMEOUT, save_result: Path | None = SAVE_RESULT,
          save_detailed: bool = SAVE_DETAILED, plot_dir: Path | None = PLOT_DIR, report: Path | None = REPORT,
          api_key: str | None = API_KEY) -> None:
    """Step one load dimension until the SLO (--goodput at --slo-percentile) or the error budget breaks; report
    the largest load holding the SLO and why the next step broke (latency, capacity, 4xx, 5xx, timeout, connection).

    Exit status: 0 when at least one step held the SLO, 1 when none did, 2 for bad arguments.
    """
    from sluice.loadtest.client import BenchTarget, run_async
    from sluice.loadtest.datasets import DatasetError, DatasetSpec, make_requests
    from sluice.loadtest.runner import LoadSettings, run_config, warm_up, warmup_requests
    from sluice.loadtest.sweep import SweepDimension, SweepPlan, parse_values, run_sweep, step_load, sweep_document

    spec = DatasetSpec(dataset_name, dataset_path, random_input_len, random_output_len, random_range_ratio,
                       sharegpt_output_len)
    base = LoadSettings(num_prompts, request_rate, burstiness, max_concurrency, duration, seed)
    try:
        chosen_dimension = SweepDimension(dimension)
    except ValueError:
        raise _fail(f"--sweep must be one of {', '.join(d.value for d in SweepDimension)}, not {dimension!r}") from None
    try:
        plan = SweepPlan(chosen_dimension, tuple(parse_values(values, chosen_dimension)), spec, base,
                         parse_goodput(goodput), slo_percentile, max_error_rate, keep_going)
        if chosen_dimension is SweepDimension.INPUT_LEN and dataset_name != "random":
            raise ValueError("--sweep input-len steps --random-input-len: it needs --dataset-name random")
        chosen = sorted(set(parse_percentiles(percentiles)) | {slo_percentile})
        first_settings, first_spec = step_load(plan.dimension, plan.values[0], base, spec)
        first_settings.check()
        warm = (warmup_requests(first_spec, warmup, model=model, seed=seed,
                                fallback=make_requests(first_spec, 1, model=model, seed=seed)) if warmup else [])
    except (ValueError, DatasetError) as exc:
        raise _fail(str(exc)) from None

    target = BenchTarget(base_url, model, endpoint=endpoint, api_key=api_key, timeout_s=timeout)
    with _progress() as progress:
        bars = _SweepBars(progress, plan)

        async def go() -> list[SweepStep]:
            warmed = progress.add_task("warm-up", total=len(warm), visible=bool(warm))
            outcome = await warm_up(target, warm, first_settings.max_concurrency, lambda _: progress.advance(warmed))
            if outcome.failed:
                progress.console.print(f"[yellow]warm-up:[/] {outcome.failed} of {len(warm)} requests failed")
            progress.update(warmed, visible=False)
            return await run_sweep(target, plan, percentiles=chosen, progress=bars)

        steps = run_async(go())
    document = sweep_document(run_config(target, spec, base, plan.slos_ms), plan, steps, len(warm))
    console.print(_sweep_table(document))
    _print_headline(document)
    _write_outputs(document, save_result, save_detailed, plot_dir, report, sweep=True)
    if document["sweep"]["largest_passing"] is None:
        raise typer.Exit(1)


class _SweepBars:
    """The sweep's progress: one bar over the steps, one over the current step's requests."""

    def __init__(self, progress: Progress, plan: SweepPlan) -> None:
        self.progress, self.plan = progress, plan
        self.overall: TaskID = progress.add_task("sweep steps", total=len(plan.values))
        self.step: TaskID = progress.add_task("step", total=None)

    def step_started(self, index: int, value: float, requests: int | None) -> None:
        self.progress.reset(self.step, total=requests, description=f"{self.plan.dimension} {value:g}")

    def request_done(self, result: RequestResult) -> None:
        self.progress.advance(self.step)

    def step_done(self, step: SweepStep) -> None:
        self.progress.advance(self.overall)
        verdict = "[green]PASS[/]" if step.verdict.passed else f"[red]FAIL[/] ({escape(str(step.verdict.kind))})"
        self.progress.console.print(f"{self.plan.dimension} {step.value:g}: {verdict}")


@bench_app.command("report")
def report_cmd(result_file: Path = typer.Argument(..., help="A result JSON from `bench run` or `bench sweep` "
                                                  "(--save-result; with --save-detailed for the run plots)."),
               out: Path = typer.Option(..., "--out", help="HTML file to write."),
               plot_dir: Path | None = typer.Option(None, "--plot-dir", help="Also write the PNG plots here."),
               title: str | None = typer.Option(None, "--title", help="Report title (default: command and model).")
               ) -> None:
    """Render a saved result as a self-contained HTML report (tables, errors, embedded PNG plots; no network)."""
    from sluice.loadtest.plots import run_figures, sweep_figures, write_figures
    from sluice.loadtest.report import is_sweep, render_report

    try:
        document = json.loads(result_file.read_text())
        if not isinstance(document, dict) or not ("steps" in document or "completed" in document):
            raise ValueError("not a bench run or sweep result")
        figures = sweep_figures(document) if is_sweep(document) else run_figures(document)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"{result_file}: {exc}") from None
    if plot_dir is not None:
        write_figures(figures, plot_dir)
    out.write_text(render_report(document, figures, title))
    console.print(f"report written to {escape(str(out))}")


@bench_app.command("compare")
def compare_cmd(baseline: Path = typer.Argument(..., help="Result A (the baseline), from `bench run --save-result`."),
                candidate: Path = typer.Argument(..., help="Result B (the candidate)."),
                fail_if: list[str] = typer.Option([], "--fail-if", help="Repeatable rule, tested on B against A: "
                                                  "'METRIC OP [+|-]NUMBER[%|ms|s]'. 'ttft_p99 > +10%' (relative "
                                                  "change), 'p99_ttft_ms > +5ms' (signed: B − A), 'failed > 0' "
                                                  "(unsigned: B's value). OP is >, >=, < or <=."),
                as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON.")) -> None:
    """Deltas between two run results (absolute and %) and a CI performance gate.

    Exit status: 0 when no rule trips, 1 when any does, 2 for bad input (unreadable file, unknown metric, bad rule).
    """
    from sluice.loadtest.compare import CompareError, compare_results, load_result, parse_rule

    try:
        a, b = load_result(baseline), load_result(candidate)
        rules = [parse_rule(text, (a, b)) for text in fail_if]
        names = (str(baseline), str(candidate))
        outcomes = [(rule, rule.observed(a, b, names), rule.trips(a, b, names)) for rule in rules]
    except CompareError as exc:
        raise _fail(str(exc)) from None
    deltas = compare_results(a, b)
    tripped = any(hit for _, _, hit in outcomes)
    if as_json:
        print(json.dumps({"a": str(baseline), "b": str(candidate), "metrics": [d.to_dict() for d in deltas],
                          "rules": [{"rule": r.text, "metric": r.metric, "mode": r.mode, "observed": _finite(value),
                                     "threshold": r.threshold, "tripped": hit} for r, value, hit in outcomes],
                          "tripped": tripped}, indent=2))
    else:
        console.print(_compare_table(deltas, baseline, candidate))
        for rule, value, hit in outcomes:
            unit = "%" if rule.mode == "relative" else ""
            verdict = "[red]TRIPPED[/]" if hit else "[green]ok[/]"
            console.print(f"{verdict}  {escape(rule.text)}  (observed {value:+.2f}{unit})")
    if tripped:
        raise typer.Exit(1)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _write_outputs(document: Mapping[str, Any], save_result: Path | None, save_detailed: bool,
                   plot_dir: Path | None, report: Path | None, *, sweep: bool) -> None:
    from sluice.loadtest.metrics import without_detail
    from sluice.loadtest.plots import run_figures, sweep_figures, write_figures
    from sluice.loadtest.report import render_report

    if save_result is not None:
        saved: Mapping[str, Any] = document
        if not save_detailed:
            saved = ({**document, "steps": [without_detail(step) for step in document["steps"]]} if sweep
                     else without_detail(document))
        save_result.write_text(json.dumps(saved, indent=2) + "\n")
        console.print(f"results written to {escape(str(save_result))}")
    if plot_dir is None and report is None:
        return
    figures = sweep_figures(document) if sweep else run_figures(document)
    if plot_dir is not None:
        for path in write_figures(figures, plot_dir):
            console.print(f"plot written to {escape(str(path))}")
    if report is not None:
        report.write_text(render_report(document, figures))
        console.print(f"report written to {escape(str(report))}")


def _summary_table(result: Mapping[str, Any]) -> Table:
    from sluice.loadtest.tables import error_rows, summary_sections

    table = Table(title="Serving Benchmark Result", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for title, rows in summary_sections(result):
        if title:
            table.add_section()
            table.add_row(f"[bold]{escape(title)}[/]", "")
        for label, value in rows:
            table.add_row(escape(label), value)
    errors = error_rows(result)
    if errors:
        table.add_section()
        for error, kind, count, message in errors:
            table.add_row(f"Errors: {escape(error)} ({kind})" + (f"\n  [dim]{escape(message[:70])}[/]"
                                                                 if message else ""), str(count))
    return table


def _sweep_table(document: Mapping[str, Any]) -> Table:
    from sluice.loadtest.tables import sweep_headers, sweep_rows

    table = Table(title=f"Sweep over {document['sweep']['dimension']} (latencies in ms)")
    for index, header in enumerate(sweep_headers(document)):
        table.add_column(header, justify="left" if index == len(sweep_headers(document)) - 1 else "right")
    for cells, passed, _ in sweep_rows(document):
        table.add_row(*cells[:-1], f"[green]{cells[-1]}[/]" if passed else f"[red]{escape(cells[-1])}[/]")
    return table


def _print_headline(document: Mapping[str, Any]) -> None:
    from sluice.loadtest.tables import sweep_headline

    sweep = document["sweep"]
    for index, line in enumerate(sweep_headline(document)):
        good = sweep["largest_passing"] is not None if index == 0 else sweep["broke_at"] is None
        console.print(f"[bold {'green' if good else 'red'}]{escape(line)}[/]")


def _compare_table(deltas: list[Delta], baseline: Path, candidate: Path) -> Table:
    table = Table(title=f"A = {escape(str(baseline))}   B = {escape(str(candidate))}")
    for header in ("metric", "A", "B", "Δ (B − A)", "Δ %"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for delta in deltas:
        color = {True: "green", False: "red", None: "default"}[delta.improved]
        pct = delta.change_pct
        shown = "{:.2%}" if delta.metric == "error_rate" else "{:.0f}" if delta.metric in ("completed", "failed") \
            else "{:.2f}"
        table.add_row(delta.metric, shown.format(delta.a), shown.format(delta.b),
                      f"[{color}]{shown.replace(':', ':+').format(delta.change)}[/]",
                      f"[{color}]{pct:+.1f}%[/]" if math.isfinite(pct) else f"[{color}]{'+' if pct > 0 else '-'}∞[/]")
    return table
