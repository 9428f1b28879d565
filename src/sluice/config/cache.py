"""Response-cache sections and how a model's cache section merges over the top-level one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sluice.config._base import _Strict

if TYPE_CHECKING:
    from sluice.config import SluiceConfig


CacheWhen = Literal["deterministic", "always"]  # deterministic: temperature 0 or a seed


class ExactCacheConfig(_Strict):
    """Answers to the same normalised request (docs/cache.md)."""

    enabled: bool = True
    when: CacheWhen = "deterministic"
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, gt=0)  # per replica in memory (LRU); Redis: TTL and its maxmemory policy


class CacheEmbedderConfig(_Strict):
    """What embeds prompts for the semantic cache: a configured backend, or all-MiniLM-L6-v2 in-process."""

    backend: str | None = None  # a backend serving embeddings; None: load `path` in-process
    model: str | None = None  # the model name sent to that backend (default: the backend's name)
    path: str = "builtin:all-minilm-l6-v2"
    device: str = "cpu"


class SemanticCacheConfig(_Strict):
    """Answers to paraphrases of a cached prompt, within one scope (docs/cache.md)."""

    enabled: bool = False
    when: CacheWhen = "always"
    threshold: float = Field(0.85, gt=0, le=1)  # cosine similarity (MiniLM), with the guard: docs/cache.md
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(100_000, gt=0)  # all models together; least recently used evicted first
    max_user_turns: int = Field(1, ge=1)  # longer conversations are never answered from this cache
    guard: bool = True  # also compare the two prompts' numbers, negations, directions, swapped words (guard.py)
    embedder: CacheEmbedderConfig = CacheEmbedderConfig()


class CacheConfig(_Strict):
    """Response caching defaults; `models.<name>.cache` overrides keys one by one (nested keys too)."""

    namespace: Literal["key", "team", "global"] = "key"  # who may share an entry
    store_truncated: bool = False  # also keep answers cut at max_tokens (finish_reason "length")
    max_entry_bytes: int = Field(1_048_576, gt=0)  # larger answers are not cached
    exact: ExactCacheConfig = ExactCacheConfig()
    semantic: SemanticCacheConfig = SemanticCacheConfig()


_GATEWAY_WIDE_CACHE_KEYS = ("exact.max_entries", "semantic.max_entries", "semantic.embedder")


def merge_cache_config(base: CacheConfig, override: CacheConfig | None) -> CacheConfig:
    """`base` with the keys `override` sets (recursively), as a model's cache section reads."""
    return base if override is None else _merge_set_fields(base, override)


def _merge_set_fields(base: Any, override: Any) -> Any:
    updates: dict[str, Any] = {}
    for name in override.model_fields_set:
        value = getattr(override, name)
        current = getattr(base, name)
        updates[name] = _merge_set_fields(current, value) if isinstance(value, _Strict) else value
    return base.model_copy(update=updates)


def _set_paths(node: Any, prefix: str = "") -> set[str]:
    paths = set()
    for name in node.model_fields_set:
        value = getattr(node, name)
        paths.add(prefix + name)
        if isinstance(value, _Strict):
            paths |= _set_paths(value, f"{prefix}{name}.")
    return paths


def _check_cache_config(config: SluiceConfig) -> None:
    embedder = config.cache.semantic.embedder
    if embedder.backend is not None and embedder.backend not in config.backends:
        known = ", ".join(sorted(config.backends)) or "none"
        raise ValueError(f"cache.semantic.embedder.backend: unknown backend {embedder.backend!r} "
                         f"(configured: {known})")
    for model_name, model in config.models.items():
        if model.cache is None:
            continue
        for path in sorted(_set_paths(model.cache) & set(_GATEWAY_WIDE_CACHE_KEYS)):
            raise ValueError(f"models.{model_name}.cache.{path}: gateway-wide; set it in the top-level `cache`")


__all__ = [
    "CacheConfig",
    "CacheEmbedderConfig",
    "CacheWhen",
    "ExactCacheConfig",
    "SemanticCacheConfig",
    "merge_cache_config",
]
