"""`sluice sim`: serve a simulated vLLM server for a catalog model on catalog GPUs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from sluice.cli.common import console, err_console

_FAULT_HELP = ("Inject a fault (repeatable): error:status=500,rate=0.05 | error:status=429,rate=0.02,retry_after_s=2 "
               "| spike:rate=0.1,seconds=2 | stall:rate=0.05,seconds=5,after_tokens=10 | drop:rate=0.1,after_tokens=20 "
               "| refuse:rate=0.2 (or refuse:for_s=30) | degraded (or degraded:slowdown=3,error_rate=0.1) | seed:7. "
               "Change them at run time with POST /sim/faults.")


def sim(
    model: str = typer.Option(..., "--model", help="Catalog model id (e.g. llama-3.1-8b; see `sluice plan`), or a "
                              "Hugging Face config.json / checkpoint directory."),
    gpu: str = typer.Option(..., "--gpu", help="Catalog GPU id (e.g. h100-sxm, a100-80gb-sxm, l4)."),
    tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", "-tp",
                                             help="GPUs the model is split across with tensor parallelism."),
    pipeline_parallel_size: int = typer.Option(1, "--pipeline-parallel-size", "-pp",
                                               help="Pipeline stages (each of --tensor-parallel-size GPUs)."),
    quantization: str | None = typer.Option(None, "--quantization", "-q",
                                            help="Weight quantization as vLLM names it (fp8, awq, gptq, ...); "
                                            "default: the model's own dtype."),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="KV-cache dtype: auto or fp8."),
    max_model_len: int | None = typer.Option(None, "--max-model-len",
                                             help="Longest prompt + output in tokens (default: the model's context)."),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs",
                                            help="Most sequences in one batch (default: vLLM's for this GPU)."),
    max_num_batched_tokens: int | None = typer.Option(None, "--max-num-batched-tokens",
                                                      help="Token budget of one step (default: vLLM's for this GPU)."),
    gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization",
                                                 help="Fraction of GPU memory for weights, activations and KV cache."),
    served_model_name: str | None = typer.Option(None, "--served-model-name",
                                                 help="Model name clients send (default: the catalog id)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated text (same seed and prompt, same answer)."),
    tool_call_rate: float = typer.Option(0.5, "--tool-call-rate", min=0.0, max=1.0,
                                         help="Share of answers to tool_choice \"auto\" that call a tool (required "
                                         "or a named tool always calls; none never does)."),
    fault: list[str] = typer.Option([], "--fault", help=_FAULT_HELP),
    catalog_file: list[Path] = typer.Option([], "--catalog", help="Extra catalog YAML (GPUs, models) to load."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (vLLM's default is 8000)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: critical, error, warning, info."),
    record_timings: bool = typer.Option(False, "--record-timings",
                                        help="Keep each request's true arrival and frame-write times (perf_counter "
                                        "ns) in memory, served at GET /sim/timings (DELETE clears). Runs on the "
                                        "asyncio loop, where a frame's stamp follows its socket write."),
) -> None:
    """Serve a SIMULATED vLLM server: OpenAI API and vLLM /metrics, timed by the planner's cost model."""
    from sluice.catalog import CatalogError, load_catalog
    from sluice.plan import PlanError
    from sluice.sim import TimingLog, build_simulator, combine, make_server, parse_fault_flag

    try:
        faults = combine([parse_fault_flag(flag) for flag in fault])
        simulator = build_simulator(
            model, gpu, served_model_name=served_model_name, seed=seed, faults=faults,
            catalog=load_catalog(*catalog_file), tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size, quantization=quantization, kv_cache_dtype=kv_cache_dtype,
            max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, tool_call_rate=tool_call_rate)
    except (PlanError, CatalogError, ValueError) as exc:
        err_console.print(f"[red]sluice sim:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"[bold]sluice sim[/] — [yellow]SIMULATED[/] {escape(simulator.description)}")
    active = [name for name, value in faults if value and name != "seed"]
    if active:
        console.print(f"faults: {', '.join(active)} (change with POST /sim/faults)")
    console.print(f"serving `{escape(simulator.model_name)}` on http://{host}:{port}/v1  (metrics: /metrics)")
    if record_timings:
        console.print(f"recording request timings: http://{host}:{port}/sim/timings")
    timings = TimingLog() if record_timings else None
    make_server(simulator, host=host, port=port, log_level=log_level, timings=timings,
                loop="asyncio" if record_timings else "auto").run()
