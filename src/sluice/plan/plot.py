"""PNG plot of output throughput and TPOT against batch size (matplotlib's Agg renderer, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sluice.plan.deployment import Deployment
from sluice.plan.throughput import BatchPoint


def plot_batch_sweep(points: Sequence[BatchPoint], deployment: Deployment, path: str | Path, *,
                     input_len: int, output_len: int, running_limit: int | None = None) -> Path:
    """Two stacked panels on a log2 batch-size axis; batches beyond `running_limit` (KV cache or
    max_num_seqs: the rest queue) are shaded."""
    target = Path(path)
    sizes = [point.batch_size for point in points]
    figure = Figure(figsize=(8, 7), layout="constrained")  # no pyplot: no global state, no GUI backend
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(sizes, [p.latency.output_tokens_per_s for p in points], "o-", color="tab:blue",
             label="closed loop (prefill interleaved)")
    top.plot(sizes, [p.decode_tokens_per_s for p in points], "s--", color="tab:cyan", label="decode only")
    top.set_ylabel("output tokens/s")
    bottom.plot(sizes, [p.latency.tpot_s * 1e3 for p in points], "o-", color="tab:red",
                label="TPOT, closed loop")
    bottom.plot(sizes, [p.decode_step_s * 1e3 for p in points], "s--", color="tab:orange",
                label="decode step only")
    bottom.set_ylabel("TPOT (ms)")
    bottom.set_xlabel("batch size (concurrent sequences)")
    bottom.set_xscale("log", base=2)
    for axis in (top, bottom):
        axis.grid(True, which="both", alpha=0.3)
        axis.set_ylim(bottom=0)
        if running_limit is not None and running_limit < sizes[-1]:
            axis.axvspan(running_limit, sizes[-1], color="grey", alpha=0.15,
                         label=f"beyond {running_limit} running sequences (KV cache / max-num-seqs): queueing")
        axis.legend(loc="upper left", fontsize=8)
    bottom.set_xticks(sizes, [str(size) for size in sizes])
    top.set_title(f"{deployment.describe()}\nprompt {input_len} tokens, output {output_len} tokens "
                  f"(sluice plan estimate)", fontsize=10)
    figure.savefig(target, dpi=120)
    return target
