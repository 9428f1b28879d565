"""`sluice plan …`: will a model fit on a GPU, how fast will it serve, what will it cost, what to rent."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from sluice.catalog import GPU, Catalog, CatalogError, ModelArch, PriceMode, load_catalog
from sluice.cli.common import console, err_console
from sluice.plan import (
    DEFAULT_QUANTIZATIONS,
    GIB,
    SLO,
    BatchPoint,
    CostEstimate,
    MemoryPlan,
    PlanError,
    Recommendation,
    Workload,
    cost_by_mode,
    default_batch_sizes,
    estimate_cost,
    estimate_latency,
    make_deployment,
    max_running,
    min_parallelism,
    plan_memory,
    recommend,
    report,
    sweep_batch_sizes,
    usd_per_million_tokens,
    weights_min_gpus,
)

plan_app = typer.Typer(help="Capacity planner: VRAM fit, throughput and latency, cost per 1M tokens, GPU advice. "
                            "Flags follow vLLM's names; every command has --json.", no_args_is_help=True)

_MODEL = typer.Option(..., "--model", "-m", help="Model id from `sluice plan models`, or a local Hugging Face "
                      "config.json (or checkpoint directory holding one).")
_GPU = typer.Option(..., "--gpu", "-g", help="GPU id from `sluice plan gpus`, e.g. h100-sxm, a100-80gb-sxm, l4.")
_CATALOG = typer.Option(None, "--catalog", help="Extra catalog YAML (same layout as the built-in gpus.yaml / "
                        "models.yaml) adding or replacing GPUs, prices and models. Repeatable.")
_TP = typer.Option(None, "--tensor-parallel-size", "-tp", min=1, help="GPUs per tensor-parallel group. "
                   "Default: the smallest TP (then pipeline-parallel nodes) that fits.")
_PP = typer.Option(None, "--pipeline-parallel-size", "-pp", min=1, help="Pipeline stages (default 1, or chosen "
                   "with TP when neither is given).")
_QUANT = typer.Option("bf16", "--quantization", "-q", help="Weight format: bf16, fp16, fp8, int8, awq, gptq, "
                      "bitsandbytes, gguf-q4_0, gguf-q4_k_m, gguf-q5_k_m, gguf-q6_k, gguf-q8_0.")
_KV_DTYPE = typer.Option("auto", "--kv-cache-dtype", help="KV cache dtype: auto (model dtype, 2 bytes), fp8, "
                         "fp8_e4m3, fp8_e5m2 (1 byte).")
_MAX_LEN = typer.Option(None, "--max-model-len", min=1, help="Longest sequence (prompt + output) to admit. "
                        "Default: the model's max context, as vLLM.")
_UTIL = typer.Option(0.9, "--gpu-memory-utilization", min=0.01, max=1.0, help="Fraction of GPU memory vLLM "
                     "may use for weights, activations and KV cache.")
_SEQS = typer.Option(None, "--max-num-seqs", min=1, help="Most sequences per step. Default as `vllm serve`: "
                     "1024 on >= 70 GiB non-A100 GPUs, else 256.")
_TOKENS = typer.Option(None, "--max-num-batched-tokens", min=1, help="Token budget per step. Default as "
                       "`vllm serve`: 8192 on >= 70 GiB non-A100 GPUs, else 2048.")
_INPUT = typer.Option(1024, "--input-len", min=1, help="Prompt tokens per request.")
_OUTPUT = typer.Option(128, "--output-len", min=1, help="Output tokens per request.")
_PRICE = typer.Option(PriceMode.ON_DEMAND, "--price", help="How GPU-hours are bought.")
_PROVIDER = typer.Option(None, "--provider", help="Only this provider's prices (aws, gcp, lambda, runpod, ori).")
_JSON = typer.Option(False, "--json", help="Print one JSON document (schema in docs/planner.md).")


def _fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _catalog(files: list[Path] | None) -> Catalog:
    try:
        return load_catalog(*(files or []))
    except CatalogError as error:
        _fail(str(error))


def _lookup(catalog: Catalog, model: str, gpu: str) -> tuple[ModelArch, GPU]:
    try:
        return catalog.model(model), catalog.gpu(gpu)
    except CatalogError as error:
        _fail(str(error))


def _plan(model: ModelArch, gpu: GPU, tp: int | None, pp: int | None, **flags: Any) -> tuple[MemoryPlan, bool]:
    """The requested layout, or (with neither -tp nor -pp) the smallest one that fits: (plan, auto)."""
    try:
        if tp is None and pp is None:
            found = min_parallelism(model, gpu, **flags)
            if found is not None:
                return found, True
            err_console.print(f"[yellow]note:[/] no layout of up to 64 × {gpu.id} fits; showing one GPU")
        return plan_memory(make_deployment(model, gpu, tensor_parallel_size=tp or 1,
                                           pipeline_parallel_size=pp or 1, **flags)), tp is None and pp is None
    except PlanError as error:
        _fail(str(error))


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(report.tidy(document), indent=2))


def _gib(value: float) -> str:
    return f"{value / GIB:,.2f} GiB"


@plan_app.command("fit")
def fit(
    model: str = _MODEL, gpu: str = _GPU, tensor_parallel_size: int | None = _TP,
    pipeline_parallel_size: int | None = _PP, quantization: str = _QUANT, kv_cache_dtype: str = _KV_DTYPE,
    max_model_len: int | None = _MAX_LEN, gpu_memory_utilization: float = _UTIL, max_num_seqs: int | None = _SEQS,
    max_num_batched_tokens: int | None = _TOKENS, catalog: list[Path] | None = _CATALOG, as_json: bool = _JSON,
) -> None:
    """Does the model fit? Weights, activation reserve, KV cache per GPU, KV capacity and concurrency.

    Exit status: 0 it fits, 1 it does not, 2 a bad id or flag.
    """
    arch, device = _lookup(_catalog(catalog), model, gpu)
    plan, auto = _plan(arch, device, tensor_parallel_size, pipeline_parallel_size, quantization=quantization,
                       kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
                       max_num_batched_tokens=max_num_batched_tokens)
    if as_json:
        _print_json(report.fit_json(plan, auto_parallel=auto))
    else:
        console.print(_fit_table(plan, auto))
    if not plan.fits:
        raise typer.Exit(1)


def _fit_table(plan: MemoryPlan, auto: bool) -> Table:
    deployment, stage = plan.deployment, plan.binding
    arch, device = deployment.model, deployment.gpu
    verdict = "[green]fits[/]" if plan.fits else "[red]does not fit[/]"
    layout = f"TP={deployment.tensor_parallel_size} PP={deployment.pipeline_parallel_size}"
    table = Table(show_header=False, box=None, pad_edge=False,
                  title=f"{arch.id} on {deployment.num_gpus}× {device.id} ({layout}"
                        f"{', chosen as the smallest that fits' if auto and plan.fits else ''}): {verdict}")
    table.add_column(style="bold")
    table.add_column()
    per_token = arch.kv_bytes_per_token(deployment.kv_bytes_per_element)
    rows = [
        ("weights (whole model)", f"{plan.total_weight_bytes / 1e9:,.2f} GB = {_gib(plan.total_weight_bytes)} "
         f"{deployment.quantization.label}; >= {weights_min_gpus(arch, device, deployment.quantization)} "
         f"× {device.id} for the weights alone"),
        ("GPU memory", f"{_gib(plan.total_gpu_bytes)} usable × {deployment.gpu_memory_utilization:g} = "
         f"{_gib(plan.budget_bytes)} budget per GPU"),
        ("  weights", _gib(stage.weights_bytes)),
        ("  activation peak", f"{_gib(stage.activation_bytes)} (max-num-seqs {deployment.max_num_seqs}, "
         f"max-num-batched-tokens {deployment.max_num_batched_tokens})"),
        ("  non-torch", _gib(stage.non_torch_bytes)),
        ("  KV cache", _gib(stage.kv_cache_bytes)),
        ("KV per token", f"{per_token / 1024:,.0f} KiB = 2 × {arch.layers} layers × {arch.kv_heads} KV heads × "
         f"{arch.head_dim} × {deployment.kv_bytes_per_element} B ({deployment.kv_cache_dtype})"),
        ("max-model-len sequence", f"{deployment.max_model_len:,} tokens × KV per token = "
         f"{_gib(per_token * deployment.max_model_len)}"),
        ("KV capacity", f"{plan.kv_capacity_tokens:,} tokens = {plan.max_concurrency:,.2f} sequences of "
         f"max-model-len {deployment.max_model_len:,} (max-num-seqs {deployment.max_num_seqs})"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for problem in plan.problems:
        table.add_row("[red]problem[/]", problem)
    for warning in plan.warnings:
        table.add_row("[yellow]warning[/]", warning)
    return table


@plan_app.command("throughput")
def throughput(
    model: str = _MODEL, gpu: str = _GPU, tensor_parallel_size: int | None = _TP,
    pipeline_parallel_size: int | None = _PP, quantization: str = _QUANT, kv_cache_dtype: str = _KV_DTYPE,
    max_model_len: int | None = _MAX_LEN, gpu_memory_utilization: float = _UTIL, max_num_seqs: int | None = _SEQS,
    max_num_batched_tokens: int | None = _TOKENS, input_len: int = _INPUT, output_len: int = _OUTPUT,
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, help="Concurrent requests for the TTFT/TPOT "
                                    "and cost estimate (closed loop, as `vllm bench serve --max-concurrency`)."),
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="Comma-separated batch sizes for the "
                                           "table (default: powers of two up to max-num-seqs)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of throughput and TPOT vs batch size."),
    price: PriceMode = _PRICE, provider: str | None = _PROVIDER,
    gpu_hour_usd: float | None = typer.Option(None, "--gpu-hour-usd", min=0.0, help="Price per GPU-hour to use "
                                              "instead of the catalog's (for --price)."),
    catalog: list[Path] | None = _CATALOG, as_json: bool = _JSON,
) -> None:
    """Decode tokens/s and TPOT per batch size, prefill time, TTFT/TPOT at a concurrency, cost per 1M tokens."""
    arch, device = _lookup(_catalog(catalog), model, gpu)
    plan, _ = _plan(arch, device, tensor_parallel_size, pipeline_parallel_size, quantization=quantization,
                    kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                    gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
                    max_num_batched_tokens=max_num_batched_tokens)
    if not plan.fits:
        _fail(f"{plan.deployment.describe()} does not start: {'; '.join(plan.problems)}", code=1)
    deployment = plan.deployment
    try:
        sizes = ([int(size) for size in batch_sizes.split(",") if size.strip()] if batch_sizes
                 else default_batch_sizes(deployment.max_num_seqs))
        if not sizes or min(sizes) < 1:
            raise PlanError("--batch-sizes must be positive integers")
        latency = estimate_latency(deployment, Workload(input_len, output_len, concurrency), plan.kv_capacity_tokens)
        points = sweep_batch_sizes(deployment, plan.kv_capacity_tokens, input_len, output_len, sorted(set(sizes)))
    except ValueError as error:  # PlanError, or a batch size that is not a number
        _fail(str(error))
    if gpu_hour_usd is not None:
        custom = estimate_cost(deployment, latency.output_tokens_per_s, price, usd_per_gpu_hour=gpu_hour_usd)
        costs = [custom] if custom else []
    else:
        costs = cost_by_mode(deployment, latency.output_tokens_per_s, provider=provider)
    plot_path = None
    if plot is not None:
        from sluice.plan import plot_batch_sweep  # matplotlib loads only when a plot is asked for

        limit = max_running(deployment, plan.kv_capacity_tokens, Workload(input_len, output_len, 1 << 30))
        plot_path = str(plot_batch_sweep(points, deployment, plot, input_len=input_len, output_len=output_len,
                                         running_limit=limit))
    if as_json:
        _print_json(report.throughput_json(plan, latency, points, costs, price, plot_path))
        return
    console.print(_batch_table(plan, points, costs, price, input_len, output_len))
    console.print(f"at concurrency {concurrency} ({latency.running} running"
                  f"{', the rest queue for KV cache' if latency.kv_limited else ''}): TTFT "
                  f"{latency.ttft_s * 1e3:,.0f} ms, TPOT {latency.tpot_s * 1e3:,.1f} ms, "
                  f"{latency.output_tokens_per_s:,.0f} output tokens/s ({latency.bound}-bound decode)")
    for cost in costs:
        console.print(f"  {cost.mode.value:<12} {cost.provider:<8} ${cost.usd_per_gpu_hour:.3f}/GPU-h × "
                      f"{cost.num_gpus} → ${cost.usd_per_million_output_tokens:,.3f} per 1M output tokens")
    if not costs:
        console.print(f"  no {price.value} price in the catalog for {device.id}; pass --gpu-hour-usd")
    if plot_path:
        console.print(f"plot written to {plot_path}")


def _batch_table(plan: MemoryPlan, points: list[BatchPoint], costs: list[CostEstimate], price: PriceMode,
                 input_len: int, output_len: int) -> Table:
    hourly = next((cost.usd_per_hour for cost in costs if cost.mode == price), None)
    table = Table(title=f"{plan.deployment.describe()}: prompt {input_len}, output {output_len} tokens, "
                        f"KV capacity {plan.kv_capacity_tokens:,} tokens",
                  caption="decode: steady decode steps only; TTFT/TPOT/out tok/s: closed loop at concurrency = "
                          "batch, prefills interleaved; * = exceeds KV cache or max-num-seqs (the rest queue)")
    for name in ("batch", "decode step ms", "decode tok/s", f"prefill {input_len}×B ms", "TTFT ms", "TPOT ms",
                 "out tok/s", f"$/1M out ({price.value})"):
        table.add_column(name, justify="right")
    for point in points:
        cost = "-" if hourly is None else f"{usd_per_million_tokens(hourly, point.latency.output_tokens_per_s):,.3f}"
        table.add_row(f"{point.batch_size}{'' if point.fits_in_kv else '*'}", f"{point.decode_step_s * 1e3:,.2f}",
                      f"{point.decode_tokens_per_s:,.0f}", f"{point.prefill_s * 1e3:,.1f}",
                      f"{point.latency.ttft_s * 1e3:,.0f}", f"{point.latency.tpot_s * 1e3:,.2f}",
                      f"{point.latency.output_tokens_per_s:,.0f}", cost)
    return table


@plan_app.command("recommend")
def recommend_cmd(
    model: str = _MODEL,
    ttft_ms: float = typer.Option(..., "--ttft-ms", min=0.0, help="Mean time-to-first-token objective (ms)."),
    tpot_ms: float = typer.Option(..., "--tpot-ms", min=0.0, help="Mean time-per-output-token objective (ms)."),
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, help="Concurrent requests to serve."),
    input_len: int = _INPUT, output_len: int = _OUTPUT, price: PriceMode = _PRICE, provider: str | None = _PROVIDER,
    gpus: str | None = typer.Option(None, "--gpus", help="Comma-separated GPU ids to consider (default: all)."),
    quantizations: str = typer.Option(",".join(DEFAULT_QUANTIZATIONS), "--quantizations",
                                      help="Comma-separated weight formats to consider."),
    max_gpus: int = typer.Option(16, "--max-gpus", min=1, help="Most GPUs in total (replicas included)."),
    top: int = typer.Option(10, "--top", min=1, help="How many options to show."),
    kv_cache_dtype: str = _KV_DTYPE, gpu_memory_utilization: float = _UTIL,
    max_model_len: int | None = typer.Option(None, "--max-model-len", min=1, help="Longest sequence to admit. "
                                             "Default: input-len + output-len."),
    catalog: list[Path] | None = _CATALOG, as_json: bool = _JSON,
) -> None:
    """Rank GPU × count × quantisation by cost per 1M output tokens among those meeting the TTFT/TPOT SLO.

    Exit status: 0 with options, 1 when nothing meets the objective, 2 a bad id or flag.
    """
    book = _catalog(catalog)
    try:
        arch = book.model(model)
        devices = [book.gpu(name.strip()) for name in gpus.split(",")] if gpus else list(book.gpus.values())
        slo, workload = SLO(ttft_ms / 1e3, tpot_ms / 1e3), Workload(input_len, output_len, concurrency)
        formats = [name.strip() for name in quantizations.split(",") if name.strip()]
        result = recommend(arch, devices, slo, workload, price_mode=price, quantizations=formats, max_gpus=max_gpus,
                           provider=provider, kv_cache_dtype=kv_cache_dtype,
                           gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
    except (CatalogError, PlanError) as error:
        _fail(str(error))
    shown = replace(result, options=result.options[:top])
    if as_json:
        _print_json(report.recommend_json(arch, slo, workload, price, shown))
    else:
        _print_recommendation(arch, slo, workload, price, shown)
    if not result.options:
        raise typer.Exit(1)


def _print_recommendation(arch: ModelArch, slo: SLO, workload: Workload, price: PriceMode,
                          result: Recommendation) -> None:
    title = (f"{arch.id}: TTFT <= {slo.ttft_s * 1e3:g} ms, TPOT <= {slo.tpot_s * 1e3:g} ms at concurrency "
             f"{workload.concurrency} (prompt {workload.input_len}, output {workload.output_len}), {price.value}")
    if not result.options:
        console.print(f"{title}\n[red]no option[/]: {result.reason}", highlight=False)
        return
    table = Table(title=title, caption=f"{result.considered} layouts considered; GPUs = TP × PP × replicas")
    for name in ("#", "GPU", "GPUs", "quant", "TTFT ms", "TPOT ms", "out tok/s", "$/GPU-h", "provider", "$/1M out"):
        table.add_column(name, justify="left" if name in ("GPU", "quant", "provider") else "right")
    for rank, option in enumerate(result.options, start=1):
        deployment = option.deployment
        count = f"{deployment.tensor_parallel_size}×{deployment.pipeline_parallel_size}×{option.replicas}"
        table.add_row(str(rank), deployment.gpu.id, f"{option.num_gpus} ({count})", deployment.quantization.id,
                      f"{option.latency.ttft_s * 1e3:,.0f}", f"{option.latency.tpot_s * 1e3:,.1f}",
                      f"{option.output_tokens_per_s:,.0f}", f"{option.cost.usd_per_gpu_hour:.3f}",
                      option.cost.provider, f"{option.cost.usd_per_million_output_tokens:,.3f}")
    console.print(table)


@plan_app.command("gpus")
def gpus_cmd(catalog: list[Path] | None = _CATALOG, as_json: bool = _JSON) -> None:
    """List the GPU catalog: memory, bandwidth, dense TFLOPS, interconnect and the cheapest on-demand price."""
    book = _catalog(catalog)
    if as_json:
        _print_json({"schema": "sluice.plan.gpus/v1", "gpus": [report.gpu_json(gpu) for gpu in book.gpus.values()]})
        return
    table = Table(title="GPUs (dense TFLOPS; usable = what CUDA reports, before --gpu-memory-utilization)")
    for name in ("id", "memory GB", "usable GiB", "HBM GB/s", "BF16", "FP8", "INT8", "interconnect",
                 "on-demand $/GPU-h"):
        table.add_column(name, justify="left" if name in ("id", "interconnect") else "right")
    for gpu in book.gpus.values():
        offer = gpu.cheapest_price(PriceMode.ON_DEMAND)
        table.add_row(gpu.id, f"{gpu.memory_gb:g}", f"{gpu.usable_memory_gib:.2f}", f"{gpu.memory_bandwidth_gb_s:,.0f}",
                      f"{gpu.bf16_tflops:g}", "-" if gpu.fp8_tflops is None else f"{gpu.fp8_tflops:g}",
                      "-" if gpu.int8_tops is None else f"{gpu.int8_tops:g}",
                      f"{gpu.interconnect} {gpu.interconnect_gb_s:g} GB/s",
                      "-" if offer is None else f"{offer[1]:.2f} ({offer[0].provider.id})")
    console.print(table)


@plan_app.command("models")
def models_cmd(catalog: list[Path] | None = _CATALOG, as_json: bool = _JSON) -> None:
    """List the model catalog: parameters (computed from the shapes), layers, heads, KV heads, KV per token."""
    book = _catalog(catalog)
    if as_json:
        _print_json({"schema": "sluice.plan.models/v1",
                     "models": [report.model_json(model) for model in book.models.values()]})
        return
    table = Table(title="Models (params computed from the architecture; KV per token in BF16)")
    for name in ("id", "params B", "active B", "layers", "hidden", "heads", "KV heads", "head dim", "vocab",
                 "max context", "KV KiB/token"):
        table.add_column(name, justify="left" if name == "id" else "right")
    for model in book.models.values():
        table.add_row(model.id, f"{model.total_params / 1e9:.2f}",
                      f"{model.active_params / 1e9:.2f}" if model.is_moe else "-", str(model.layers),
                      str(model.hidden_size), str(model.heads), str(model.kv_heads), str(model.head_dim),
                      f"{model.vocab_size:,}", f"{model.max_context:,}", f"{model.kv_bytes_per_token(2) / 1024:g}")
    console.print(table)
