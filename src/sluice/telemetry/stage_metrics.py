"""`sluice_stage_seconds`: each chain stage's own time per request, so that a stage that slows the gateway shows
up in production as it does in the overhead benchmark (docs/architecture.md#the-stage-chain).

Every request observes one value per stage in its chain, so this histogram is kept as plain counts and exported
by a custom collector: an observation is a bisect and two additions, where `prometheus_client.Histogram` takes
a lock per bucket and per sum (about 0.75 µs each). The gateway's event loop is its only writer and its only
reader (the /metrics route runs on the same loop), so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# A stage's own time: a dict lookup takes microseconds, a semantic-cache embedding or a Redis call milliseconds.
STAGE_BUCKETS_S = (0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                   0.025, 0.05, 0.1, 0.25, 1.0)
_NAME = "sluice_stage_seconds"
_HELP = "A chain stage's own time per request: up to the next stage, plus its end hooks."


class StageMetrics(Collector):
    """Per stage: a count per bucket (the last is +Inf) and the sum; stage names are the chain's, not client input."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._series: dict[str, tuple[list[int], list[float]]] = {}  # stage -> (bucket counts, [sum])
        self._bounds = STAGE_BUCKETS_S
        if registry is not None:
            registry.register(self)

    def observe(self, stage_s: Mapping[str, float]) -> None:
        series = self._series
        bounds = self._bounds
        for stage, seconds in stage_s.items():
            found = series.get(stage)
            if found is None:
                found = series[stage] = ([0] * (len(bounds) + 1), [0.0])
            found[0][bisect_left(bounds, seconds)] += 1  # le is inclusive: a value on a bound counts in it
            found[1][0] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(_NAME, _HELP, labels=["stage"])
        for stage, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            buckets = []
            for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric([stage], buckets, total[0])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(_NAME, _HELP, labels=["stage"])


__all__ = ["STAGE_BUCKETS_S", "StageMetrics"]
