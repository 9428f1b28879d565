"""Benchmark metrics over per-request results, defined exactly as vLLM `bench serve` defines them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MS_PER_S = 1000.0
SLO_METRICS = ("ttft", "tpot", "e2el")


@dataclass(slots=True, frozen=True)
class RequestResult:
    """One request as the client saw it; times in seconds from `time.perf_counter`."""

    success: bool
    prompt_tokens: int
    output_tokens: int = 0
    ttft_s: float = 0.0
    itl_s: tuple[float, ...] = ()
    e2e_s: float = 0.0
    start_s: float = 0.0
    error: str | None = None  # error class, e.g. "http_500", "ClientConnectionError"
    output_tokens_estimated: bool = False  # re-tokenised because the server reported no usage
    generated_text: str = ""
    error_detail: str | None = None  # the server's error message (shortened), when it sent one
    turn: int = 0  # multi-turn: the turn of its conversation, 0 for the first


@dataclass(slots=True, frozen=True)
class Distribution:
    """mean/median/std and chosen percentiles of one latency metric, in milliseconds."""

    mean_ms: float
    median_ms: float
    std_ms: float
    percentiles_ms: tuple[tuple[float, float], ...]


@dataclass(slots=True, frozen=True)
class BenchmarkSummary:
    duration_s: float
    num_requests: int
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    request_goodput: float | None
    output_throughput: float
    total_token_throughput: float
    achieved_concurrency: float
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2el: Distribution
    errors_by_class: dict[str, int] = field(default_factory=dict)
    estimated_output_requests: int = 0
    error_examples: dict[str, str] = field(default_factory=dict)  # error class -> first server message


def distribution(values_s: Sequence[float], percentiles: Sequence[float]) -> Distribution:
    """As vLLM: numpy mean/median/std (population) and np.percentile (linear); 0 when there are no values."""
    data = list(values_s) or 0
    return Distribution(
        mean_ms=float(np.mean(data)) * MS_PER_S,
        median_ms=float(np.median(data)) * MS_PER_S,
        std_ms=float(np.std(data)) * MS_PER_S,
        percentiles_ms=tuple((float(p), float(np.percentile(data, p)) * MS_PER_S) for p in percentiles),
    )


def tpot_s(result: RequestResult) -> float | None:
    """Time per output token after the first: (latency − TTFT) / (output tokens − 1); None with ≤ 1 token."""
    if result.output_tokens <= 1:
        return None
    return (result.e2e_s - result.ttft_s) / (result.output_tokens - 1)


def count_good(results: Sequence[RequestResult], slos_ms: Mapping[str, float]) -> int:
    """Successful requests meeting every SLO (metric ≤ SLO); as vLLM, TPOT counts as 0 with ≤ 1 output token."""
    unknown = set(slos_ms) - set(SLO_METRICS)
    if unknown:
        raise ValueError(f"unknown goodput metric(s) {sorted(unknown)}; known: {', '.join(SLO_METRICS)}")
    good = 0
    for result in results:
        if not result.success:
            continue
        measured = {"ttft": result.ttft_s, "tpot": tpot_s(result) or 0.0, "e2el": result.e2e_s}
        if all(slo_ms / MS_PER_S >= measured[name] for name, slo_ms in slos_ms.items()):
            good += 1
    return good


def summarize(results: Sequence[RequestResult], duration_s: float, *, percentiles: Sequence[float] = (99,),
              goodput_slos_ms: Mapping[str, float] | None = None) -> BenchmarkSummary:
    """Aggregate a run the way vLLM's `calculate_metrics` does; `duration_s` is the run's wall time."""
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    done = [r for r in results if r.success]
    total_input = sum(r.prompt_tokens for r in done)
    total_output = sum(r.output_tokens for r in done)
    tpots = [t for t in map(tpot_s, done) if t is not None]
    itls = [gap for r in done for gap in r.itl_s]
    good = count_good(done, goodput_slos_ms) if goodput_slos_ms else None
    return BenchmarkSummary(
        duration_s=duration_s,
        num_requests=len(results),
        completed=len(done),
        failed=len(results) - len(done),
        total_input_tokens=total_input,
        total_output_tokens=total_output,
        request_throughput=len(done) / duration_s,
        request_goodput=None if good is None else good / duration_s,
        output_throughput=total_output / duration_s,
        total_token_throughput=(total_input + total_output) / duration_s,
        achieved_concurrency=sum(r.e2e_s for r in done) / duration_s,
        ttft=distribution([r.ttft_s for r in done], percentiles),
        tpot=distribution(tpots, percentiles),
        itl=distribution(itls, percentiles),
        e2el=distribution([r.e2e_s for r in done], percentiles),
        errors_by_class=dict(Counter(r.error or "unknown" for r in results if not r.success)),
        estimated_output_requests=sum(r.output_tokens_estimated for r in done),
        error_examples=_first_details(results),
    )


def _first_details(results: Sequence[RequestResult]) -> dict[str, str]:
    examples: dict[str, str] = {}
    for result in results:
        if not result.success and result.error_detail:
            examples.setdefault(result.error or "unknown", result.error_detail)
    return examples


def percentile_key(p: float) -> str:
    """vLLM's spelling of a percentile in result keys: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def to_result_dict(summary: BenchmarkSummary) -> dict[str, object]:
    """The summary under vLLM's `--save-result` field names (plus sluice's extras, named plainly)."""
    out: dict[str, object] = {
        "duration": summary.duration_s,
        "num_prompts": summary.num_requests,
        "completed": summary.completed,
        "failed": summary.failed,
        "total_input_tokens": summary.total_input_tokens,
        "total_output_tokens": summary.total_output_tokens,
        "request_throughput": summary.request_throughput,
        "request_goodput": summary.request_goodput,
        "output_throughput": summary.output_throughput,
        "total_token_throughput": summary.total_token_throughput,
        "achieved_concurrency": summary.achieved_concurrency,
        "errors_by_class": summary.errors_by_class,
        "estimated_output_requests": summary.estimated_output_requests,
        "error_examples": summary.error_examples,
    }
    for name in ("ttft", "tpot", "itl", "e2el"):
        dist: Distribution = getattr(summary, name)
        out[f"mean_{name}_ms"] = dist.mean_ms
        out[f"median_{name}_ms"] = dist.median_ms
        out[f"std_{name}_ms"] = dist.std_ms
        for p, value in dist.percentiles_ms:
            out[f"p{percentile_key(p)}_{name}_ms"] = value
    return out


# vLLM's `--save-detailed` arrays, plus sluice's start times, latencies and error messages.
DETAIL_FIELDS = ("input_lens", "output_lens", "ttfts", "itls", "e2els", "start_times", "generated_texts", "errors",
                 "error_details", "turn_indices")
SCRAPES_FIELD = "server_metrics_samples"  # the raw /metrics scrapes of a run: saved to a file of their own


def per_request_detail(results: Sequence[RequestResult]) -> dict[str, list[object]]:
    """Per-request arrays in request order, as vLLM saves them (seconds; "" in `errors` for a success)."""
    return {
        "input_lens": [r.prompt_tokens for r in results],
        "output_lens": [r.output_tokens for r in results],
        "ttfts": [r.ttft_s for r in results],
        "itls": [list(r.itl_s) for r in results],
        "e2els": [r.e2e_s for r in results],
        "start_times": [r.start_s for r in results],
        "generated_texts": [r.generated_text for r in results],
        "errors": ["" if r.success else r.error or "unknown" for r in results],
        "error_details": [r.error_detail or "" for r in results],
        "turn_indices": [r.turn for r in results],
    }


def without_detail(result: Mapping[str, object]) -> dict[str, object]:
    """The result without its per-request arrays (what `--save-result` writes without `--save-detailed`) and
    without the raw metrics scrapes (they go to a file of their own)."""
    return {key: value for key, value in result.items() if key not in DETAIL_FIELDS and key != SCRAPES_FIELD}
