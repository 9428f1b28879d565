"""A run over time: requests sent and completed, output tokens per second, and the server's scraped key series."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sluice.loadtest.scrape import KEY_SERIES, key_series_of

TARGET_BINS = 50
CURRENT_KV, LEGACY_KV = "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"  # one gauge, two names: draw one
_NICE = (1.0, 2.0, 2.5, 5.0)


@dataclass(slots=True, frozen=True)
class Throughput:
    """Per-bin rates of one run: bin starts (s since the run began) and the rates in each bin, per second."""

    bin_s: float
    starts_s: tuple[float, ...]
    sent_per_s: tuple[float, ...]
    completed_per_s: tuple[float, ...]
    output_tokens_per_s: tuple[float, ...]


def bin_width_s(span_s: float, target_bins: int = TARGET_BINS) -> float:
    """A round bin width (1, 2, 2.5 or 5 × 10^k s) giving about `target_bins` bins over `span_s`."""
    raw = max(span_s, 1e-3) / target_bins
    scale = 10.0 ** math.floor(math.log10(raw))
    return next(nice * scale for nice in (*_NICE, 10.0) if nice * scale >= raw)


def throughput_over_time(result: Mapping[str, Any], bin_s: float | None = None) -> Throughput:
    """Requests sent (by start), completed (by end) and output tokens (each text chunk's share of its request's
    tokens, at the chunk's arrival) per second, in bins over the run; from the per-request arrays."""
    starts, ttfts, itls, e2els = result["start_times"], result["ttfts"], result["itls"], result["e2els"]
    errors, outputs = result["errors"], result["output_lens"]
    ends = [start + e2el for start, e2el in zip(starts, e2els, strict=True)]
    span = max([*ends, *starts, 0.0])
    width = bin_s or bin_width_s(span)
    edges = np.arange(0.0, span + width, width)
    if len(edges) < 2:
        edges = np.array([0.0, width])
    chunk_times: list[float] = []
    chunk_tokens: list[float] = []
    for start, ttft, gaps, out, error in zip(starts, ttfts, itls, outputs, errors, strict=True):
        if error:
            continue
        times = [start + t for t in accumulate([ttft, *gaps])]
        chunk_times += times
        chunk_tokens += [out / len(times)] * len(times)
    sent = np.histogram(starts, edges)[0] / width
    done = np.histogram([end for end, error in zip(ends, errors, strict=True) if not error], edges)[0] / width
    tokens = np.histogram(chunk_times, edges, weights=chunk_tokens or None)[0] / width
    return Throughput(width, tuple(edges[:-1].tolist()), tuple(sent.tolist()), tuple(done.tolist()),
                      tuple(tokens.tolist()))


def throughput_figure(result: Mapping[str, Any], title: str = "") -> Figure:
    rates = throughput_over_time(result)
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    figure.suptitle(title or f"Throughput over time ({rates.bin_s:g} s bins)")
    requests, tokens = figure.subplots(2, 1, sharex=True)
    centers = [start + rates.bin_s / 2 for start in rates.starts_s]
    requests.step(centers, rates.sent_per_s, where="mid", color="#7f8c8d", label="sent (req/s)")
    requests.step(centers, rates.completed_per_s, where="mid", color="#2c3e50", label="completed (req/s)")
    offered = result.get("offered_request_rate")
    if isinstance(offered, (int, float)):
        requests.axhline(offered, color="#e67e22", linestyle="--", label=f"offered {offered:.2f} req/s")
    requests.set_ylabel("requests / s")
    tokens.step(centers, rates.output_tokens_per_s, where="mid", color="#8e44ad", label="output tokens/s")
    tokens.set_ylabel("tokens / s")
    tokens.set_xlabel("time since the run began (s)")
    for axes in (requests, tokens):
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=8)
    return figure


def server_metrics_figure(document: Mapping[str, Any]) -> Figure | None:
    """One panel per scraped key series (vLLM's running / waiting requests, KV-cache use, sluice's in flight
    and queued, ...); None when the result has none."""
    series = key_series_of(document)
    if not series:
        return None
    names = [name for name in KEY_SERIES if name in series and not (name == LEGACY_KV and CURRENT_KV in series)]
    figure = Figure(figsize=(10, 2.2 * len(names) + 1), layout="constrained")
    figure.suptitle(f"Server metrics ({document['server_metrics'].get('url', '/metrics')})")
    panels: Sequence[Any] = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for axes, name in zip(panels, names, strict=True):
        points = series[name]
        axes.step([t for t, _ in points], [v for _, v in points], where="post", color="#2980b9")
        axes.set_title(f"{KEY_SERIES[name]} — {name}", fontsize=9)
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("time since the run began (s)")
    return figure
