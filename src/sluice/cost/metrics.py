"""Prometheus series for cost: USD and tokens by model, key and team; GPU busy time and hourly cost by backend.

Cardinality: `model` is a configured public name, `key` a virtual-key id and `team` a team name, all created by
the admin (never by client input), so series stay bounded by what the admin creates; requests without a key
or team carry "". Children are cached per label set so an observation is a dict lookup.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluice.backends import Usage
from sluice.cost.usage_cost import TokenSplit

TOKEN_TYPES = ("prompt", "cached_prompt", "cache_write", "completion", "reasoning")


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "key", "team"]
        self.cost = Counter("sluice_cost_usd", "Cost of answered requests in USD (API prices or GPU-hour share).",
                            labels, registry=registry)
        self.tokens = Counter("sluice_cost_tokens", "Tokens by billing type: prompt (uncached), cached_prompt, "
                              "cache_write, completion (reasoning included), reasoning.",
                              [*labels, "type"], registry=registry)
        self.unpriced = Counter("sluice_cost_unpriced_requests", "Requests to targets with no price (cost unknown).",
                                labels, registry=registry)
        self.gpu_busy = Counter("sluice_gpu_busy_seconds", "Seconds a GPU-priced backend had at least one request "
                                "in progress (as seen by this replica).", ["backend"], registry=registry)
        self.gpu_attributed = Counter("sluice_gpu_attributed_cost_usd", "GPU-hour cost charged to requests.",
                                      ["backend"], registry=registry)
        self.gpu_hourly = Gauge("sluice_gpu_cost_usd_per_hour", "What a GPU-priced backend's GPUs cost per hour, "
                                "busy or idle.", ["backend"], registry=registry)
        self._children: dict[tuple[str, str, str], tuple[Counter, Counter, tuple[Counter, ...]]] = {}

    def observe(self, model: str, key: str, team: str, usage: Usage | None, cost_usd: float | None) -> None:
        children = self._children.get((model, key, team))
        if children is None:
            children = (self.cost.labels(model, key, team), self.unpriced.labels(model, key, team),
                        tuple(self.tokens.labels(model, key, team, kind) for kind in TOKEN_TYPES))
            self._children[(model, key, team)] = children
        cost, unpriced, tokens = children
        if cost_usd is None:
            unpriced.inc()
        elif cost_usd > 0:
            cost.inc(cost_usd)
        if usage is None:
            return
        split = TokenSplit.of(usage)
        for counter, count in zip(tokens, (split.fresh_prompt, split.cached_prompt, split.cache_write,
                                           split.completion, usage.reasoning_tokens or 0), strict=True):
            if count > 0:
                counter.inc(count)


__all__ = ["TOKEN_TYPES", "CostMetrics"]
