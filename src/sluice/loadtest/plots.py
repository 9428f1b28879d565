"""PNG plots of bench results (matplotlib's Agg canvas, no display): latency CDFs, latency over time, sweeps."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sluice.loadtest.metrics import MS_PER_S, percentile_key
from sluice.loadtest.records import has_detail
from sluice.loadtest.timeline import server_metrics_figure, throughput_figure

SLO_COLOR, FAIL_COLOR, PASS_COLOR = "#c0392b", "#c0392b", "#27ae60"
DIMENSION_LABELS = {"concurrency": "max concurrency (requests in flight)", "rate": "request rate (req/s)",
                    "input-len": "prompt length (tokens)"}


def request_tpots_ms(result: Mapping[str, Any]) -> list[float]:
    """Per successful request with > 1 output token: (E2EL − TTFT) / (output tokens − 1), in ms."""
    return [(e2el - ttft) / (out - 1) * MS_PER_S
            for ttft, e2el, out, error in zip(result["ttfts"], result["e2els"], result["output_lens"],
                                              result["errors"], strict=True) if not error and out > 1]


def run_figures(result: Mapping[str, Any], title: str = "") -> dict[str, bytes]:
    """`latency_cdf.png`, `latency_over_time.png` and `throughput_over_time.png` for one run with per-request
    data, and `server_metrics.png` when it scraped the server's key series."""
    figures = {}
    if has_detail(result):
        figures = {"latency_cdf.png": _png(_cdf_figure(result, title)),
                   "latency_over_time.png": _png(_over_time_figure(result, title)),
                   "throughput_over_time.png": _png(throughput_figure(result))}
    if (server := server_metrics_figure(result)) is not None:
        figures["server_metrics.png"] = _png(server)
    return figures


def sweep_figures(document: Mapping[str, Any]) -> dict[str, bytes]:
    """`sweep_throughput.png` and `sweep_latency.png` for a sweep document ({} when it has no steps), plus the
    latency CDFs of the last step holding the SLO and of the step that broke, when they kept per-request data."""
    if not document.get("steps"):
        return {}
    figures = {"sweep_throughput.png": _png(_sweep_throughput_figure(document)),
               "sweep_latency.png": _png(_sweep_latency_figure(document))}
    sweep = document["sweep"]
    for label, value in (("holding", sweep.get("largest_passing")), ("broke", sweep.get("broke_at"))):
        step = next((s for s in document["steps"] if value is not None and s["sweep_value"] == value), None)
        if step is not None and has_detail(step) and step["completed"]:
            title = f"Latency CDFs at {sweep['dimension']} {value:g} ({label})"
            figures[f"step_{label}_{value:g}_latency_cdf.png"] = _png(_cdf_figure(step, title))
    return figures


def write_figures(figures: Mapping[str, bytes], directory: Path, prefix: str = "") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in figures.items():
        path = directory / f"{prefix}{name}"
        path.write_bytes(png)
        paths.append(path)
    return paths


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _slos(result: Mapping[str, Any]) -> Mapping[str, float]:
    goodput = result.get("goodput")
    return goodput if isinstance(goodput, Mapping) else {}


def _cdf_figure(result: Mapping[str, Any], title: str) -> Figure:
    ok = [not error for error in result["errors"]]
    samples_ms = {
        "TTFT": [t * MS_PER_S for t, good in zip(result["ttfts"], ok, strict=True) if good],
        "TPOT": request_tpots_ms(result),
        "ITL": [gap * MS_PER_S for gaps, good in zip(result["itls"], ok, strict=True) if good for gap in gaps],
        "E2EL": [t * MS_PER_S for t, good in zip(result["e2els"], ok, strict=True) if good],
    }
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    figure.suptitle(title or "Latency distributions (CDF)")
    slos = _slos(result)
    for axes, (name, values) in zip(figure.subplots(2, 2).flat, samples_ms.items(), strict=True):
        axes.set_title(f"{name} (n={len(values)})")
        axes.set_xlabel("ms")
        axes.set_ylabel("fraction of samples ≤ x")
        axes.grid(alpha=0.3)
        if not values:
            axes.text(0.5, 0.5, "no samples", ha="center", va="center", transform=axes.transAxes)
            continue
        data = np.sort(np.asarray(values))
        axes.step(data, np.arange(1, len(data) + 1) / len(data), where="post", color="#2c3e50")
        for p, style in ((50, ":"), (99, "--")):
            value = float(np.percentile(data, p))
            axes.axvline(value, color="#7f8c8d", linestyle=style, label=f"P{p} {value:.1f} ms")
        if (slo := slos.get(name.lower())) is not None:
            axes.axvline(slo, color=SLO_COLOR, linewidth=1.5, label=f"SLO {slo:g} ms")
        axes.set_ylim(0, 1.02)
        axes.legend(loc="lower right", fontsize=8)
    return figure


def _over_time_figure(result: Mapping[str, Any], title: str) -> Figure:
    starts, errors = result["start_times"], result["errors"]
    good_starts = [s for s, error in zip(starts, errors, strict=True) if not error]
    ttfts = [t * MS_PER_S for t, error in zip(result["ttfts"], errors, strict=True) if not error]
    tpot_points = [(s, (e2el - ttft) / (out - 1) * MS_PER_S)
                   for s, ttft, e2el, out, error in zip(starts, result["ttfts"], result["e2els"],
                                                        result["output_lens"], errors, strict=True)
                   if not error and out > 1]
    failed_starts = [s for s, error in zip(starts, errors, strict=True) if error]
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    figure.suptitle(title or "Latency by request start time")
    top, bottom = figure.subplots(2, 1, sharex=True)
    slos = _slos(result)
    for axes, name, xs, ys in ((top, "TTFT", good_starts, ttfts),
                               (bottom, "TPOT", [s for s, _ in tpot_points], [v for _, v in tpot_points])):
        axes.scatter(xs, ys, s=10, alpha=0.6, color="#2980b9", label=f"{name} per request")
        if (slo := slos.get(name.lower())) is not None:
            axes.axhline(slo, color=SLO_COLOR, linewidth=1.5, label=f"SLO {slo:g} ms")
        if failed_starts:
            axes.scatter(failed_starts, [0.0] * len(failed_starts), marker="x", color=FAIL_COLOR,
                         label=f"failed ({len(failed_starts)})")
        axes.set_ylabel(f"{name} (ms)")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=8)
    bottom.set_xlabel("request start (s since the run began)")
    return figure


def _sweep_axis(axes: Axes, document: Mapping[str, Any], values: Sequence[float]) -> None:
    sweep = document["sweep"]
    axes.set_xlabel(DIMENSION_LABELS.get(sweep["dimension"], sweep["dimension"]))
    if len(values) > 2 and values[0] > 0 and values[-1] / values[0] >= 8:
        axes.set_xscale("log", base=2)
        axes.set_xticks(values, [f"{v:g}" for v in values])
        axes.minorticks_off()
        axes.set_xlim(values[0] / 1.25, values[-1] * 1.25)
    else:  # a step where nothing completed has no points: keep its break line inside the frame anyway
        pad = (values[-1] - values[0]) * 0.05 or values[0] * 0.1 or 1.0
        axes.set_xlim(values[0] - pad, values[-1] + pad)
    axes.grid(alpha=0.3)
    if sweep.get("largest_passing") is not None:
        axes.axvline(sweep["largest_passing"], color=PASS_COLOR, linestyle=":",
                     label=f"holds SLO: {sweep['largest_passing']:g}")
    if sweep.get("broke_at") is not None:
        axes.axvline(sweep["broke_at"], color=FAIL_COLOR, linestyle="--",
                     label=f"broke at {sweep['broke_at']:g} ({sweep.get('broke_kind')})")


def _sweep_throughput_figure(document: Mapping[str, Any]) -> Figure:
    steps = document["steps"]
    values = [float(step["sweep_value"]) for step in steps]
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    figure.suptitle("Throughput vs load")
    requests, tokens = figure.subplots(1, 2)
    requests.plot(values, [s["request_throughput"] for s in steps], "o-", color="#2c3e50", label="requests/s")
    goodput = [s.get("request_goodput") for s in steps]
    if any(g is not None for g in goodput):
        requests.plot(values, [math.nan if g is None else g for g in goodput], "s--", color=PASS_COLOR,
                      label="goodput (requests/s within every SLO)")
    requests.set_ylabel("requests / s")
    tokens.plot(values, [s["output_throughput"] for s in steps], "^-", color="#8e44ad", label="output tokens/s")
    tokens.plot(values, [s["total_token_throughput"] for s in steps], "v:", color="#7f8c8d",
                label="total tokens/s (prompt + output)")
    tokens.set_ylabel("tokens / s")
    for axes in (requests, tokens):
        _sweep_axis(axes, document, values)
        axes.set_ylim(0, axes.get_ylim()[1] * 1.3)  # headroom for the legend
        axes.legend(loc="upper left", fontsize=8)
    return figure


def _sweep_latency_figure(document: Mapping[str, Any]) -> Figure:
    steps, sweep = document["steps"], document["sweep"]
    values = [float(step["sweep_value"]) for step in steps]
    key = percentile_key(float(sweep.get("slo_percentile", 99)))
    slos = sweep.get("goodput") or {}
    figure = Figure(figsize=(10, 5), layout="constrained")
    figure.suptitle(f"Latency vs load (P50 and P{key})")
    for axes, metric in zip(figure.subplots(1, 2), ("ttft", "tpot"), strict=True):

        def series(field: str, metric: str = metric) -> list[float]:
            return [float(s[field]) if s["completed"] and field in s else math.nan for s in steps]

        axes.plot(values, series(f"median_{metric}_ms"), "o-", color="#2980b9", label="P50")
        axes.plot(values, series(f"p{key}_{metric}_ms"), "s-", color="#e67e22", label=f"P{key}")
        if metric in slos:
            axes.axhline(slos[metric], color=SLO_COLOR, linewidth=1.5, label=f"SLO {slos[metric]:g} ms")
        axes.set_title(metric.upper())
        axes.set_ylabel(f"{metric.upper()} (ms)")
        _sweep_axis(axes, document, values)
        axes.legend(loc="best", fontsize=8)
    return figure
