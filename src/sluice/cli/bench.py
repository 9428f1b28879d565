"""`sluice bench`: run, sweep, report and compare load tests of OpenAI-compatible servers (vLLM's metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from sluice.cli import bench_options as opt
from sluice.cli.bench_options import parse_goodput, parse_percentiles
from sluice.cli.bench_output import (
    Outputs,
    RunBar,
    SweepBars,
    print_failure,
    print_headline,
    progress,
    summary_table,
    sweep_table,
    write_outputs,
)
from sluice.cli.bench_report import compare_cmd, fail, report_cmd
from sluice.cli.common import console

if TYPE_CHECKING:
    from sluice.loadtest.datasets import DatasetSpec
    from sluice.loadtest.sweep import SweepStep
    from sluice.loadtest.target import BenchTarget

bench_app = typer.Typer(help="Load-test an OpenAI-compatible server (vLLM `bench serve` metrics): run, sweep, "
                        "report, compare.", no_args_is_help=True)
bench_app.command("report")(report_cmd)
bench_app.command("compare")(compare_cmd)

__all__ = ["bench_app", "parse_goodput", "parse_percentiles"]


def _target(base_url: str, model: str, endpoint: str | None, backend: str | None, api_key: str | None,
            timeout: float, headers: list[str], extra_body: str | None, ignore_eos: bool) -> BenchTarget:
    """The target from the flags; raises `TargetError` (a ValueError) naming the flag and the URL."""
    from sluice.loadtest import BenchTarget, parse_extra_body, parse_headers

    return BenchTarget(base_url, model, endpoint=opt.choose_endpoint(endpoint, backend), api_key=api_key,
                       timeout_s=timeout, headers=parse_headers(headers), extra_body=parse_extra_body(extra_body),
                       ignore_eos=ignore_eos)


def _spec(name: str, path: Path | None, input_len: int, output_len: int, range_ratio: float,
          sharegpt_output_len: int | None, prefix_len: int, prefix_count: int, turns: int) -> DatasetSpec:
    from sluice.loadtest import DatasetSpec

    return DatasetSpec(name, path, input_len, output_len, range_ratio, sharegpt_output_len, prefix_len, prefix_count,
                       turns)


@bench_app.command("run")
def run(base_url: str = opt.BASE_URL, model: str = opt.MODEL, endpoint: str | None = opt.ENDPOINT,
        backend: str | None = opt.BACKEND,
        num_prompts: int = typer.Option(1000, "--num-prompts", min=1, help="Number of requests (conversations) to "
                                        "send (with --duration: the pool of prompts cycled through)."),
        request_rate: float = opt.REQUEST_RATE, arrival: str | None = opt.ARRIVAL, burstiness: float = opt.BURSTINESS,
        ramp_up_s: float = opt.RAMP_UP, max_concurrency: int | None = opt.MAX_CONCURRENCY,
        duration: float | None = opt.DURATION, dataset_name: str = opt.DATASET_NAME,
        dataset_path: Path | None = opt.DATASET_PATH, random_input_len: int = opt.INPUT_LEN,
        random_output_len: int = opt.OUTPUT_LEN, random_range_ratio: float = opt.RANGE_RATIO,
        random_prefix_len: int = opt.PREFIX_LEN, prefix_count: int = opt.PREFIX_COUNT, turns: int = opt.TURNS,
        sharegpt_output_len: int | None = opt.SHAREGPT_OUTPUT_LEN, seed: int = opt.SEED,
        goodput: list[str] = opt.GOODPUT, percentiles: str = opt.PERCENTILES, warmup: int = opt.WARMUP,
        timeout: float = opt.TIMEOUT, ignore_eos: bool = opt.IGNORE_EOS, extra_body: str | None = opt.EXTRA_BODY,
        header: list[str] = opt.HEADER, api_key: str | None = opt.API_KEY,
        scrape_metrics: bool = typer.Option(False, "--scrape-metrics", help="Sample the server's Prometheus "
                                            "/metrics during the run: all series to RESULT.metrics.jsonl, key ones "
                                            "(vLLM's running / waiting requests, KV-cache use, sluice's in flight) "
                                            "into the result and the report."),
        metrics_url: str | None = typer.Option(None, "--metrics-url", help="Where to scrape (default: the server "
                                               "root + /metrics)."),
        scrape_interval: float = typer.Option(1.0, "--scrape-interval", min=0.001, help="Seconds between scrapes."),
        save_result: Path | None = opt.SAVE_RESULT, result_dir: Path | None = opt.RESULT_DIR,
        result_filename: str | None = opt.RESULT_FILENAME, save_detailed: bool = opt.SAVE_DETAILED,
        save_requests: bool = opt.SAVE_REQUESTS, csv: Path | None = opt.CSV, plot_dir: Path | None = opt.PLOT_DIR,
        report: Path | None = opt.REPORT) -> None:
    """Benchmark serving: send NUM_PROMPTS streaming requests and report TTFT, TPOT, ITL, E2EL and throughput.

    Exit status: 0 when at least one request completed, 1 when none did (or the run stopped at a 404), 2 for bad
    arguments or dataset files.
    """
    from sluice.loadtest import (
        LoadSettings,
        ScrapeSettings,
        make_requests,
        measure,
        run_async,
        run_config,
        warm_up,
        warmup_requests,
    )

    spec = _spec(dataset_name, dataset_path, random_input_len, random_output_len, random_range_ratio,
                 sharegpt_output_len, random_prefix_len, prefix_count, turns)
    settings = LoadSettings(num_prompts, request_rate, burstiness, max_concurrency, duration, seed, arrival, ramp_up_s)
    try:
        slos, chosen = parse_goodput(goodput), parse_percentiles(percentiles)
        settings.check()
        target = _target(base_url, model, endpoint, backend, api_key, timeout, header, extra_body, ignore_eos)
        outputs = Outputs(opt.result_path(save_result, result_dir, result_filename, opt.automatic_name(
            target.describe()["backend"], request_rate, max_concurrency, model)), save_detailed, save_requests, csv,
            plot_dir, report)
        requests = make_requests(spec, num_prompts, model=model, seed=seed)
        if turns > 1 and not target.is_chat:
            raise ValueError("--turns needs the chat endpoint (multi-turn conversations)")
        warm = warmup_requests(spec, warmup, model=model, seed=seed, fallback=requests) if warmup else []
    except ValueError as exc:
        raise fail(str(exc)) from None
    scrape = (ScrapeSettings(metrics_url or f"{target.server_root}/metrics", scrape_interval) if scrape_metrics
              else None)

    with progress() as bars:

        async def go() -> tuple[int, dict[str, Any]]:
            warmed = RunBar(bars, "warm-up", len(warm) * turns, visible=bool(warm))
            outcome = await warm_up(target, warm, max_concurrency, warmed.done)
            bars.update(warmed.task, visible=False)
            measured = RunBar(bars, "requests", None if duration else len(requests) * turns)
            result = await measure(target, requests, settings, percentiles=chosen, slos_ms=slos,
                                   on_result=measured.done, scrape=scrape)
            return outcome.failed, result

        warm_failed, result = run_async(go())
    if warm_failed:
        console.print(f"[yellow]warm-up:[/] {warm_failed} of {len(warm)} requests failed")
    document = {**run_config(target, spec, settings, slos), "warmup_requests": len(warm), **result}
    console.print(summary_table(document))
    _print_scrape(document)
    write_outputs(document, outputs, sweep=False)
    print_failure(document)
    if result["completed"] == 0 or result.get("aborted"):
        raise typer.Exit(1)


def _print_scrape(document: dict[str, Any]) -> None:
    scraped = document.get("server_metrics")
    if not scraped:
        return
    series = ", ".join(scraped["series"]) or "none of the key series"
    console.print(f"server metrics: {scraped['scrapes']} scrapes of {escape(scraped['url'])} ({series})"
                  + (f"; {scraped['failed_scrapes']} failed: {escape(str(scraped['first_error']))}"
                     if scraped["failed_scrapes"]
                     else ""))


@bench_app.command("sweep")
def sweep(base_url: str = opt.BASE_URL, model: str = opt.MODEL, endpoint: str | None = opt.ENDPOINT,
          backend: str | None = opt.BACKEND,
          dimension: str = typer.Option(..., "--sweep", help="What to step: concurrency (--max-concurrency), rate "
                                        "(--request-rate, req/s) or input-len (--random-input-len: the context / "
                                        "memory boundary test)."),
          values: str = typer.Option(..., "--values", help="Steps: a list 1,2,4,8; START..MAX*FACTOR (1..64*2 = "
                                     "1,2,4,...,64); or START..MAX+STEP (512..4096+512)."),
          num_prompts: int = typer.Option(200, "--num-prompts", min=1, help="Requests per step (with --duration: "
                                          "the pool of prompts cycled through)."),
          request_rate: float = opt.REQUEST_RATE, arrival: str | None = opt.ARRIVAL,
          burstiness: float = opt.BURSTINESS, ramp_up_s: float = opt.RAMP_UP,
          max_concurrency: int | None = opt.MAX_CONCURRENCY, duration: float | None = opt.DURATION,
          dataset_name: str = opt.DATASET_NAME, dataset_path: Path | None = opt.DATASET_PATH,
          random_input_len: int = opt.INPUT_LEN, random_output_len: int = opt.OUTPUT_LEN,
          random_range_ratio: float = opt.RANGE_RATIO, random_prefix_len: int = opt.PREFIX_LEN,
          prefix_count: int = opt.PREFIX_COUNT, turns: int = opt.TURNS,
          sharegpt_output_len: int | None = opt.SHAREGPT_OUTPUT_LEN, seed: int = opt.SEED,
          goodput: list[str] = opt.GOODPUT,
          slo_percentile: float = typer.Option(99.0, "--slo-percentile", min=0.0, max=100.0, help="A step holds "
                                               "the SLO when this percentile of each --goodput metric is within it "
                                               "(99: P99 TTFT <= the TTFT SLO, ...)."),
          max_error_rate: float = typer.Option(0.01, "--max-error-rate", min=0.0, max=1.0, help="A step fails when "
                                               "more than this fraction of its requests fail."),
          keep_going: bool = typer.Option(False, "--keep-going/--stop-at-failure", help="Run every step, or stop "
                                          "at the first failing one (default)."),
          percentiles: str = typer.Option("50,90,99", "--metric-percentiles", "--percentiles",
                                          help="Percentiles to report per step (the SLO percentile is added)."),
          warmup: int = opt.WARMUP, timeout: float = opt.TIMEOUT, ignore_eos: bool = opt.IGNORE_EOS,
          extra_body: str | None = opt.EXTRA_BODY, header: list[str] = opt.HEADER, api_key: str | None = opt.API_KEY,
          save_result: Path | None = opt.SAVE_RESULT, result_dir: Path | None = opt.RESULT_DIR,
          result_filename: str | None = opt.RESULT_FILENAME, save_detailed: bool = opt.SAVE_DETAILED,
          save_requests: bool = opt.SAVE_REQUESTS, csv: Path | None = opt.CSV, plot_dir: Path | None = opt.PLOT_DIR,
          report: Path | None = opt.REPORT) -> None:
    """Step one load dimension until the SLO (--goodput at --slo-percentile) or the error budget breaks; report
    the largest load holding the SLO and why the next step broke (latency, capacity, 4xx, 5xx, timeout, connection).

    Exit status: 0 when at least one step held the SLO, 1 when none did, 2 for bad arguments.
    """
    from sluice.loadtest import (
        LoadSettings,
        SweepDimension,
        SweepPlan,
        make_requests,
        parse_values,
        run_async,
        run_config,
        run_sweep,
        step_load,
        sweep_document,
        warm_up,
        warmup_requests,
    )

    spec = _spec(dataset_name, dataset_path, random_input_len, random_output_len, random_range_ratio,
                 sharegpt_output_len, random_prefix_len, prefix_count, turns)
    base = LoadSettings(num_prompts, request_rate, burstiness, max_concurrency, duration, seed, arrival, ramp_up_s)
    try:
        chosen_dimension = SweepDimension(dimension)
    except ValueError:
        raise fail(f"--sweep must be one of {', '.join(d.value for d in SweepDimension)}, not {dimension!r}") from None
    try:
        target = _target(base_url, model, endpoint, backend, api_key, timeout, header, extra_body, ignore_eos)
        plan = SweepPlan(chosen_dimension, tuple(parse_values(values, chosen_dimension)), spec, base,
                         parse_goodput(goodput), slo_percentile, max_error_rate, keep_going)
        if chosen_dimension is SweepDimension.INPUT_LEN and dataset_name != "random":
            raise ValueError("--sweep input-len steps --random-input-len: it needs --dataset-name random")
        if turns > 1 and not target.is_chat:
            raise ValueError("--turns needs the chat endpoint (multi-turn conversations)")
        chosen = sorted(set(parse_percentiles(percentiles)) | {slo_percentile})
        first_settings, first_spec = step_load(plan.dimension, plan.values[0], base, spec)
        first_settings.check()
        outputs = Outputs(opt.result_path(save_result, result_dir, result_filename, opt.automatic_name(
            f"sweep-{dimension}", request_rate, max_concurrency, model)), save_detailed, save_requests, csv, plot_dir,
            report)
        warm = (warmup_requests(first_spec, warmup, model=model, seed=seed,
                                fallback=make_requests(first_spec, 1, model=model, seed=seed)) if warmup else [])
    except ValueError as exc:
        raise fail(str(exc)) from None

    with progress() as bars:
        sweep_bars = SweepBars(bars, plan)

        async def go() -> list[SweepStep]:
            warmed = RunBar(bars, "warm-up", len(warm) * turns, visible=bool(warm))
            outcome = await warm_up(target, warm, first_settings.max_concurrency, warmed.done)
            if outcome.failed:
                bars.console.print(f"[yellow]warm-up:[/] {outcome.failed} of {len(warm)} requests failed")
            bars.update(warmed.task, visible=False)
            return await run_sweep(target, plan, percentiles=chosen, progress=sweep_bars)

        steps = run_async(go())
    document = sweep_document(run_config(target, spec, base, plan.slos_ms), plan, steps, len(warm))
    console.print(sweep_table(document))
    print_headline(document)
    write_outputs(document, outputs, sweep=True)
    if document["sweep"]["largest_passing"] is None:
        raise typer.Exit(1)
