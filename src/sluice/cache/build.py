"""Build the cache stage from config: per-model settings, memory or Redis storage, the embedder."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from sluice.backends import Backend
from sluice.cache.embedder import Embedder
from sluice.cache.exact import ExactStore, MemoryExactStore, RedisExactStore
from sluice.cache.metrics import CacheMetrics
from sluice.cache.semantic import MemorySemanticStore, SemanticStore
from sluice.cache.semantic_redis import RedisSemanticStore
from sluice.cache.stage import GatewayCache
from sluice.config import CacheConfig, SluiceConfig, merge_cache_config
from sluice.errors import ConfigError


def effective_settings(config: SluiceConfig) -> dict[str, CacheConfig]:
    """Public model -> its cache policy (top-level `cache` + `models.<name>.cache`), models with a kind on."""
    settings = {}
    for name, model in config.models.items():
        merged = merge_cache_config(config.cache, model.cache)
        if merged.exact.enabled or merged.semantic.enabled:
            settings[name] = merged
    return settings


def uses_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))  # as state.open_state decides


def build_cache(config: SluiceConfig, registry: CollectorRegistry, backends: dict[str, Backend], *,
                clock: Callable[[], float] = time.time) -> GatewayCache | None:
    """The cache stage, or None when no model caches anything (the pipeline then uses its no-op)."""
    settings = effective_settings(config)
    if not settings:
        return None
    metrics = CacheMetrics(registry)
    state = config.state
    closers: list[Any] = []
    exact: ExactStore
    if uses_redis(state.url):
        redis = _redis_client(state.url, state.timeout_s)
        closers.append(redis)
        exact = RedisExactStore(redis, state.key_prefix)
    else:
        exact = MemoryExactStore(config.cache.exact.max_entries,
                                 on_evict=lambda reason, count: metrics.evictions.labels("exact", reason).inc(count))
    semantic: SemanticStore | None = None
    embedder = None
    if any(model.semantic.enabled for model in settings.values()):
        if importlib.util.find_spec("usearch") is None:
            raise ConfigError("cache.semantic: the semantic cache needs usearch: pip install 'sluicegate[local]'")
        embedder = _embedder(config, backends)
        capacity = config.cache.semantic.max_entries
        if uses_redis(state.url):
            # XREAD BLOCK waits up to a second: its connection needs a longer read deadline than the others.
            follow = _redis_client(state.url, state.timeout_s + 2.0)
            closers.append(follow)
            semantic = RedisSemanticStore(closers[0], state.key_prefix, capacity, metrics, clock=clock,
                                          follow_redis=follow)
        else:
            semantic = MemorySemanticStore(capacity, metrics)
    return GatewayCache(settings, metrics, exact=exact, semantic=semantic, embedder=embedder, clock=clock,
                        closers=tuple(closers))


def _embedder(config: SluiceConfig, backends: dict[str, Backend]) -> Embedder:
    chosen = config.cache.semantic.embedder
    if chosen.backend is None:
        return Embedder.builtin(chosen.path, chosen.device)
    backend = backends[chosen.backend]  # the config validator checked the name
    if "embeddings" not in backend.endpoints:
        raise ConfigError(f"cache.semantic.embedder.backend: backend `{chosen.backend}` does not serve embeddings")
    return Embedder(backend, chosen.model or chosen.backend, owned=False)


def _redis_client(url: str, timeout_s: float) -> Any:
    import redis.asyncio as aioredis

    return aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
