"""The server's Prometheus `/metrics` sampled during a run (as aiperf does): every series over time, a few key ones."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# Shown in the report when the server exports them, each summed over its labels (models, engines).
KEY_SERIES: dict[str, str] = {
    "vllm:num_requests_running": "vLLM requests running",
    "vllm:num_requests_waiting": "vLLM requests waiting",
    "vllm:kv_cache_usage_perc": "vLLM KV-cache usage (0–1)",
    "vllm:gpu_cache_usage_perc": "vLLM KV-cache usage (0–1, vLLM < 0.11)",
    "sglang:num_running_reqs": "SGLang requests running",
    "sglang:num_queue_reqs": "SGLang requests queued",
    "tgi_queue_size": "TGI requests queued",
    "tgi_batch_current_size": "TGI batch size",
    "sluice_requests_in_flight": "sluice requests in flight",
    "sluice_requests_queued": "sluice requests queued",
}
ERROR_CHARS = 200


@dataclass(slots=True, frozen=True)
class ScrapeSettings:
    url: str  # the full /metrics URL
    interval_s: float = 1.0
    timeout_s: float = 5.0


@dataclass(slots=True, frozen=True)
class MetricsSample:
    t_s: float  # seconds since the scraper started (the run's start)
    values: dict[str, float]  # series as written, `name{label="v"}`, -> value; histogram buckets left out


def parse_metrics(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition, without comments and histogram buckets (the bulk of
    vLLM's output, and `_sum` / `_count` keep what a time series needs). A line-splitter, not a full parser:
    it runs between requests on the bench's event loop, so it has to be quick."""
    values: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.rfind("}")
        if brace >= 0:
            series, rest = line[:brace + 1], line[brace + 1:].split()
        else:
            series, _, tail = line.partition(" ")
            rest = tail.split()
        if not rest or series.split("{", 1)[0].endswith("_bucket"):
            continue
        try:
            values[series] = float(rest[0])
        except ValueError:
            continue
    return values


def metric_name(series: str) -> str:
    return series.split("{", 1)[0]


@dataclass(slots=True)
class Scraped:
    """What a scraper collected: the samples, and how many scrapes failed (with the first reason)."""

    settings: ScrapeSettings
    samples: list[MetricsSample] = field(default_factory=list)
    failed: int = 0
    first_error: str | None = None

    def key_series(self) -> dict[str, list[list[float]]]:
        """KEY_SERIES present in the samples: name -> [[t_s, value summed over labels], ...]."""
        series: dict[str, list[list[float]]] = defaultdict(list)
        for sample in self.samples:
            sums: dict[str, float] = defaultdict(float)
            for name, value in sample.values.items():
                if (base := metric_name(name)) in KEY_SERIES:
                    sums[base] += value
            for name, total in sums.items():
                series[name].append([round(sample.t_s, 4), total])
        return dict(series)

    def summary(self) -> dict[str, Any]:
        """What the result JSON keeps: the scrape settings and counts, and the key series."""
        return {"url": self.settings.url, "interval_s": self.settings.interval_s, "scrapes": len(self.samples),
                "failed_scrapes": self.failed, "first_error": self.first_error, "series": self.key_series()}

    def samples_dicts(self) -> list[dict[str, Any]]:
        return [{"t_s": round(s.t_s, 4), "values": s.values} for s in self.samples]


class MetricsScraper:
    """Scrapes `settings.url` at once, every `interval_s`, and once more when stopped, on its own connection."""

    def __init__(self, settings: ScrapeSettings) -> None:
        if settings.interval_s <= 0:
            raise ValueError("--scrape-interval must be positive")
        self.scraped = Scraped(settings)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._start = 0.0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.scraped.settings.timeout_s))
        self._start = time.perf_counter()
        await self._scrape()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> Scraped:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._scrape()
        if self._session is not None:
            await self._session.close()
        return self.scraped

    async def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.scraped.settings.interval_s)
            if not self._stop.is_set():
                await self._scrape()

    async def _scrape(self) -> None:
        assert self._session is not None
        t_s = time.perf_counter() - self._start
        try:
            async with self._session.get(self.scraped.settings.url) as response:
                text = await response.text()
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status} from GET {self.scraped.settings.url}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.scraped.failed += 1
            if self.scraped.first_error is None:
                self.scraped.first_error = (" ".join(str(exc).split()) or type(exc).__name__)[:ERROR_CHARS]
            return
        self.scraped.samples.append(MetricsSample(t_s, parse_metrics(text)))


def key_series_of(document: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """The key series a result saved (`server_metrics.series`), {} when it scraped none."""
    scraped = document.get("server_metrics")
    series = scraped.get("series") if isinstance(scraped, Mapping) else None
    return {name: points for name, points in (series or {}).items() if points}
