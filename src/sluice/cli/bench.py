"""`sluice bench run`: load-test any OpenAI-compatible server with vLLM `bench serve` flags and metrics."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sluice.cli.common import console, err_console
from sluice.loadtest.metrics import SLO_METRICS

bench_app = typer.Typer(help="Load-test an OpenAI-compatible server (vLLM `bench serve` metrics).",
                        no_args_is_help=True)


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


@bench_app.command("run")
def run(
    base_url: str = typer.Option(..., "--base-url", help="Server root, e.g. http://127.0.0.1:8000 "
                                 "(the endpoint is appended)."),
    model: str = typer.Option(..., "--model", help="Model name sent in each request; also picks the tokenizer "
                              "used to count prompt tokens."),
    endpoint: str = typer.Option("/v1/chat/completions", "--endpoint",
                                 help="API path: /v1/chat/completions or /v1/completions."),
    num_prompts: int = typer.Option(1000, "--num-prompts", min=1, help="Number of requests to send."),
    request_rate: float = typer.Option(math.inf, "--request-rate", help="Requests per second; inf sends all "
                                       "at once. Arrivals are Poisson (or Gamma with --burstiness)."),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape of the arrival gaps: 1 is Poisson, "
                                     "< 1 burstier, > 1 more uniform. Only with a finite --request-rate."),
    max_concurrency: int | None = typer.Option(None, "--max-concurrency", min=1,
                                               help="Most requests in flight at once (default: unlimited)."),
    dataset_name: str = typer.Option("random", "--dataset-name", help="random, sharegpt or jsonl."),
    dataset_path: Path | None = typer.Option(None, "--dataset-path", help="ShareGPT JSON or JSONL of "
                                             "{\"prompt\": ..., \"output_len\"?: ...} objects."),
    random_input_len: int = typer.Option(1024, "--random-input-len", min=1,
                                         help="random: prompt length in tokens."),
    random_output_len: int = typer.Option(128, "--random-output-len", min=1, help="random: max output tokens; "
                                          "jsonl: the default when a line sets no output_len."),
    random_range_ratio: float = typer.Option(0.0, "--random-range-ratio", min=0.0, max=0.999,
                                             help="random: lengths drawn uniformly in [L·(1−r), L·(1+r)]."),
    sharegpt_output_len: int | None = typer.Option(None, "--sharegpt-output-len", min=1,
                                                   help="sharegpt: fixed max output tokens instead of the reply's."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dataset sampling and the arrival gaps."),
    goodput: list[str] = typer.Option([], "--goodput", help="SLOs as METRIC:MS (ttft, tpot, e2el), e.g. "
                                      "--goodput 'ttft:500 tpot:50'; goodput counts requests meeting all."),
    percentiles: str = typer.Option("99", "--metric-percentiles", "--percentiles",
                                    help="Comma-separated percentiles to report, e.g. 50,90,95,99."),
    save_result: Path | None = typer.Option(None, "--save-result", help="Write the results as JSON "
                                            "(vLLM's field names) to this file."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY",
                                       help="Bearer token (default: $OPENAI_API_KEY)."),
) -> None:
    """Benchmark serving: send NUM_PROMPTS streaming requests and report TTFT, TPOT, ITL, E2EL and throughput."""
    from sluice.loadtest.client import BenchTarget, run_benchmark
    from sluice.loadtest.datasets import DatasetError, jsonl_requests, random_requests, sharegpt_requests
    from sluice.loadtest.metrics import summarize, to_result_dict

    try:
        slos = parse_goodput(goodput)
        chosen_percentiles = parse_percentiles(percentiles)
        if dataset_name == "random":
            requests = random_requests(num_prompts, input_len=random_input_len, output_len=random_output_len,
                                       range_ratio=random_range_ratio, model=model, seed=seed)
        elif dataset_name in ("sharegpt", "jsonl"):
            if dataset_path is None:
                raise ValueError(f"--dataset-name {dataset_name} needs --dataset-path")
            requests = (sharegpt_requests(dataset_path, num_prompts, model=model, seed=seed,
                                          output_len=sharegpt_output_len) if dataset_name == "sharegpt"
                        else jsonl_requests(dataset_path, num_prompts, model=model, seed=seed,
                                            output_len=random_output_len))
        else:
            raise ValueError(f"--dataset-name must be random, sharegpt or jsonl, not {dataset_name!r}")
        if request_rate <= 0 or burstiness <= 0:
            raise ValueError("--request-rate and --burstiness must be positive")
    except (ValueError, DatasetError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None

    target = BenchTarget(base_url, model, endpoint=endpoint, api_key=api_key)
    with Progress(TextColumn("[bold]requests"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("bench", total=len(requests))
        bench_run = asyncio.run(run_benchmark(target, requests, request_rate=request_rate, burstiness=burstiness,
                                              max_concurrency=max_concurrency, seed=seed,
                                              on_result=lambda _: progress.advance(task)))
    summary = summarize(bench_run.results, bench_run.duration_s, percentiles=chosen_percentiles,
                        goodput_slos_ms=slos or None)
    result = to_result_dict(summary)
    console.print(_summary_table(result, chosen_percentiles))
    if save_result is not None:
        config = {"backend": "openai-chat" if target.is_chat else "openai", "base_url": base_url,
                  "endpoint": endpoint, "model_id": model, "dataset_name": dataset_name, "seed": seed,
                  "request_rate": "inf" if math.isinf(request_rate) else request_rate, "burstiness": burstiness,
                  "max_concurrency": max_concurrency, "goodput": slos or None}
        save_result.write_text(json.dumps({**config, **result}, indent=2) + "\n")
        console.print(f"results written to {escape(str(save_result))}")
    if summary.completed == 0:
        raise typer.Exit(1)


def _summary_table(result: dict[str, object], chosen_percentiles: list[float]) -> Table:
    from sluice.loadtest.metrics import percentile_key

    table = Table(title="Serving Benchmark Result", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("Successful requests", "completed"), ("Failed requests", "failed"),
            ("Benchmark duration (s)", "duration"), ("Total input tokens", "total_input_tokens"),
            ("Total generated tokens", "total_output_tokens"), ("Request throughput (req/s)", "request_throughput"),
            ("Request goodput (req/s)", "request_goodput"), ("Output token throughput (tok/s)", "output_throughput"),
            ("Total token throughput (tok/s)", "total_token_throughput"),
            ("Achieved concurrency", "achieved_concurrency")]
    for label, key in rows:
        if result.get(key) is not None:
            table.add_row(label, _fmt(result[key]))
    for name, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                        ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")):
        table.add_section()
        table.add_row(f"[bold]{title}[/]", "")
        table.add_row(f"Mean {name.upper()} (ms)", _fmt(result[f"mean_{name}_ms"]))
        table.add_row(f"Median {name.upper()} (ms)", _fmt(result[f"median_{name}_ms"]))
        for p in chosen_percentiles:
            table.add_row(f"P{percentile_key(p)} {name.upper()} (ms)", _fmt(result[f"p{percentile_key(p)}_{name}_ms"]))
    errors = result.get("errors_by_class") or {}
    if errors:
        table.add_section()
        for error, count in sorted(errors.items()):
            table.add_row(f"Errors: {escape(error)}", str(count))
    return table


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
