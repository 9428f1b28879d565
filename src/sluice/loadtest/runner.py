"""One measured run: optional warm-up, the requests, and the vLLM-style result document with per-request data."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.loadtest.client import BenchTarget, run_benchmark
from sluice.loadtest.datasets import BenchRequest, DatasetError, DatasetSpec, make_requests
from sluice.loadtest.failures import errors_by_kind
from sluice.loadtest.metrics import RequestResult, per_request_detail, summarize, to_result_dict

WARMUP_SEED_OFFSET = 1_000_003  # warm-up prompts differ from the measured ones (no prefix-cache head start)


@dataclass(slots=True, frozen=True)
class LoadSettings:
    """How one run sends its requests (the arrival and concurrency flags of `bench run`)."""

    num_prompts: int
    request_rate: float = math.inf
    burstiness: float = 1.0
    max_concurrency: int | None = None
    duration_s: float | None = None  # timed run: cycle through the prompts until this much time has passed
    seed: int = 0

    def check(self) -> None:
        if self.request_rate <= 0 or self.burstiness <= 0:
            raise ValueError("--request-rate and --burstiness must be positive")
        if self.duration_s is not None and (self.duration_s <= 0 or (math.isinf(self.request_rate)
                                                                      and not self.max_concurrency)):
            raise ValueError("--duration must be positive and needs a finite --request-rate or --max-concurrency")

    def describe(self) -> dict[str, object]:
        return {"request_rate": "inf" if math.isinf(self.request_rate) else self.request_rate,
                "burstiness": self.burstiness, "max_concurrency": self.max_concurrency,
                "duration_limit_s": self.duration_s, "seed": self.seed}


@dataclass(slots=True, frozen=True)
class WarmupOutcome:
    sent: int
    failed: int


def run_config(target: BenchTarget, spec: DatasetSpec, settings: LoadSettings,
               slos_ms: Mapping[str, float]) -> dict[str, object]:
    """The configuration fields of a result file (vLLM's names where it has one)."""
    return {"backend": "openai-chat" if target.is_chat else "openai", "base_url": target.base_url,
            "endpoint": target.endpoint, "model_id": target.model, **spec.describe(), **settings.describe(),
            "goodput": dict(slos_ms) or None}


def warmup_requests(spec: DatasetSpec, count: int, *, model: str, seed: int,
                    fallback: Sequence[BenchRequest]) -> list[BenchRequest]:
    """`count` prompts drawn with another seed; a file too small for that reuses the measured prompts."""
    try:
        return make_requests(spec, count, model=model, seed=seed + WARMUP_SEED_OFFSET)
    except DatasetError:
        return [fallback[i % len(fallback)] for i in range(count)]


async def warm_up(target: BenchTarget, requests: Sequence[BenchRequest], max_concurrency: int | None,
                  on_result: Callable[[RequestResult], None] | None = None) -> WarmupOutcome:
    """Send the warm-up requests all at once (at most `max_concurrency` in flight) and keep only the counts."""
    if not requests:
        return WarmupOutcome(0, 0)
    run = await run_benchmark(target, requests, max_concurrency=max_concurrency, on_result=on_result)
    return WarmupOutcome(len(run.results), sum(not r.success for r in run.results))


async def measure(target: BenchTarget, requests: Sequence[BenchRequest], settings: LoadSettings, *,
                  percentiles: Sequence[float], slos_ms: Mapping[str, float],
                  on_result: Callable[[RequestResult], None] | None = None) -> dict[str, Any]:
    """Run the requests and return vLLM's result fields, `errors_by_kind`, and the per-request arrays."""
    run = await run_benchmark(target, requests, request_rate=settings.request_rate, burstiness=settings.burstiness,
                              max_concurrency=settings.max_concurrency, seed=settings.seed,
                              duration_s=settings.duration_s, on_result=on_result)
    summary = summarize(run.results, run.duration_s, percentiles=percentiles, goodput_slos_ms=slos_ms or None)
    result: dict[str, Any] = to_result_dict(summary)
    result["errors_by_kind"] = errors_by_kind(summary.errors_by_class, summary.error_examples)
    result["error_rate"] = summary.failed / summary.num_requests
    return {**result, **per_request_detail(run.results)}
