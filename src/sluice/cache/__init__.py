"""Response caching: exact (normalised request hash) and semantic (embedding similarity within a scope)."""

from sluice.cache.build import build_cache, effective_settings
from sluice.cache.embedder import Embedder
from sluice.cache.exact import MemoryExactStore, RedisExactStore
from sluice.cache.index import HNSW_SETTINGS, Match, SemanticIndex
from sluice.cache.keys import SemanticQuery, exact_key, request_body, semantic_query
from sluice.cache.metrics import CacheMetrics
from sluice.cache.policy import CACHE_HEADER, Directive, directive_from_headers, namespace_of, qualifies, storable
from sluice.cache.semantic import MemorySemanticStore
from sluice.cache.semantic_redis import RedisSemanticStore
from sluice.cache.stage import CacheStage, GatewayCache, StreamCapture

__all__ = [
    "CACHE_HEADER",
    "HNSW_SETTINGS",
    "CacheMetrics",
    "CacheStage",
    "Directive",
    "Embedder",
    "GatewayCache",
    "Match",
    "MemoryExactStore",
    "MemorySemanticStore",
    "RedisExactStore",
    "RedisSemanticStore",
    "SemanticIndex",
    "SemanticQuery",
    "StreamCapture",
    "build_cache",
    "directive_from_headers",
    "effective_settings",
    "exact_key",
    "namespace_of",
    "qualifies",
    "request_body",
    "semantic_query",
    "storable",
]
