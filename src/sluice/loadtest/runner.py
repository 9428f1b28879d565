"""One measured run: optional warm-up, the requests, and the vLLM-style result document with per-request data."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.loadtest.arrivals import Arrival, resolve_arrival
from sluice.loadtest.client import BenchRun, BenchTarget, run_benchmark
from sluice.loadtest.datasets import BenchRequest, DatasetError, DatasetSpec, make_requests
from sluice.loadtest.failures import describe_error, errors_by_kind
from sluice.loadtest.metrics import SCRAPES_FIELD, RequestResult, per_request_detail, summarize, to_result_dict
from sluice.loadtest.scrape import MetricsScraper, ScrapeSettings

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
    arrival: str | None = None  # constant, poisson or gamma; None: from the burstiness
    ramp_up_s: float = 0.0  # the rate climbs linearly from 0 to request_rate over this long

    @property
    def process(self) -> Arrival:
        return resolve_arrival(self.arrival, self.burstiness)[0]

    def check(self) -> None:
        if math.isnan(self.request_rate) or self.request_rate <= 0:
            raise ValueError("--request-rate must be positive (inf: all at once)")
        resolve_arrival(self.arrival, self.burstiness)  # raises on a bad --arrival / --burstiness pair
        if self.duration_s is not None and (self.duration_s <= 0 or (math.isinf(self.request_rate)
                                                                      and not self.max_concurrency)):
            raise ValueError("--duration must be positive and needs a finite --request-rate or --max-concurrency")
        if self.ramp_up_s < 0 or (self.ramp_up_s and math.isinf(self.request_rate)):
            raise ValueError("--ramp-up-s must be non-negative and needs a finite --request-rate")

    def describe(self) -> dict[str, object]:
        finite = math.isfinite(self.request_rate)
        process, shape = resolve_arrival(self.arrival, self.burstiness)
        return {"request_rate": self.request_rate if finite else "inf", "arrival": process.value if finite else None,
                "burstiness": shape if math.isfinite(shape) else "inf",
                "ramp_up_s": self.ramp_up_s or None, "max_concurrency": self.max_concurrency,
                "duration_limit_s": self.duration_s, "seed": self.seed}


@dataclass(slots=True, frozen=True)
class WarmupOutcome:
    sent: int
    failed: int


def run_config(target: BenchTarget, spec: DatasetSpec, settings: LoadSettings,
               slos_ms: Mapping[str, float]) -> dict[str, object]:
    """The configuration fields of a result file (vLLM's names where it has one)."""
    return {**target.describe(), **spec.describe(), **settings.describe(), "goodput": dict(slos_ms) or None}


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
                  on_result: Callable[[RequestResult], None] | None = None,
                  scrape: ScrapeSettings | None = None) -> dict[str, Any]:
    """Run the requests and return vLLM's result fields, sluice's (offered rate, errors by kind, first error,
    an early stop), the per-request arrays and, with `scrape`, the server's metrics sampled during the run."""
    scraper = MetricsScraper(scrape) if scrape is not None else None
    if scraper is not None:
        await scraper.start()
    try:
        run = await run_benchmark(target, requests, request_rate=settings.request_rate,
                                  burstiness=settings.burstiness, max_concurrency=settings.max_concurrency,
                                  seed=settings.seed, duration_s=settings.duration_s, arrival=settings.process,
                                  ramp_up_s=settings.ramp_up_s, on_result=on_result)
    finally:
        scraped = await scraper.stop() if scraper is not None else None
    result = run_result(run, percentiles=percentiles, slos_ms=slos_ms)
    if scraped is not None:
        result["server_metrics"], result[SCRAPES_FIELD] = scraped.summary(), scraped.samples_dicts()
    return result


def run_result(run: BenchRun, *, percentiles: Sequence[float], slos_ms: Mapping[str, float]) -> dict[str, Any]:
    """The result fields of a finished run (an aborted run with no request has none to report)."""
    if not run.results:
        raise ValueError(f"no request was sent: {run.aborted or 'nothing to send'}")
    summary = summarize(run.results, run.duration_s, percentiles=percentiles, goodput_slos_ms=slos_ms or None)
    result: dict[str, Any] = to_result_dict(summary)
    result["errors_by_kind"] = errors_by_kind(summary.errors_by_class, summary.error_examples)
    result["error_rate"] = summary.failed / summary.num_requests
    offered = run.offered_rate
    result["offered_request_rate"] = None if math.isnan(offered) else offered if math.isfinite(offered) else "inf"
    first = min((r for r in run.results if not r.success), key=lambda r: r.start_s, default=None)
    result["first_error"] = describe_error(first.error or "unknown", first.error_detail) if first else None
    result["aborted"] = run.aborted
    return {**result, **per_request_detail(run.results)}
