"""Prometheus series of the response cache (documented in docs/metrics.md), on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOOKUP_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
EMBED_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.hits = Counter("sluice_cache_hits", "Requests answered from the cache, by kind (exact, semantic).",
                            ["kind", "model"], registry=r)
        self.misses = Counter("sluice_cache_misses", "Cache lookups that found nothing, by kind.",
                              ["kind", "model"], registry=r)
        self.bypasses = Counter("sluice_cache_bypasses",
                                "Requests that skipped the lookup (headers, non-deterministic, not cacheable).",
                                ["model"], registry=r)
        self.refused = Counter("sluice_cache_semantic_refused",
                               "Semantic matches above the threshold refused by the prompt check (cache/guard.py): "
                               "the prompts differ in a number, a negation, a direction or one swapped word.",
                               ["model"], registry=r)
        self.stores = Counter("sluice_cache_stores", "Answers written to the cache, by kind.", ["kind", "model"],
                              registry=r)
        self.lookup_time = Histogram("sluice_cache_lookup_seconds",
                                     "Time of a cache lookup by kind; semantic excludes the embedding.",
                                     ["kind"], buckets=LOOKUP_BUCKETS_S, registry=r)
        self.embed_time = Histogram("sluice_cache_embedding_seconds",
                                    "Time to embed a prompt for the semantic cache (worker thread).",
                                    buckets=EMBED_BUCKETS_S, registry=r)
        self.entries = Gauge("sluice_cache_entries",
                             "Entries held by this replica (exact: in-memory store only; semantic: its index).",
                             ["kind"], registry=r)
        self.evictions = Counter("sluice_cache_evictions", "Entries removed, by kind and reason (expired, capacity).",
                                 ["kind", "reason"], registry=r)
        self.errors = Counter("sluice_cache_errors",
                              "Cache operations that failed (Redis, embedder); the request went on uncached.",
                              ["operation"], registry=r)
