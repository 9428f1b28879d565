"""Semantic-cache speed: vector-index candidates, the cache's own index at 1 M entries, and embedding time.

    python benchmarks/semantic_cache_speed.py candidates [--sizes 10000,100000,1000000] [--only usearch-f16,...]
    python benchmarks/semantic_cache_speed.py lookup [--entries 1000000]
    python benchmarks/semantic_cache_speed.py embed [--queries 200]
    add --json to print one JSON document instead of tables

`candidates` builds each index over N × 384 unit vectors and measures bulk build time, the latency of single
adds after the build, single-query search latency (P50/P99 over 1,000 queries, one thread), recall@1 and the
resident memory it added. The vectors are synthetic but shaped like sentence embeddings: N/100 random
cluster centres plus noise (neighbours within a cluster at cosine ≈ 0.4–0.6, across clusters ≈ 0). Two query
sets: *near-duplicates* (a stored vector plus noise, cosine ≈ 0.86 to it: the cache-hit case, recall = the
source is found) and *fresh* points (recall = the exact nearest neighbour is found).

`lookup` fills the gateway's `SemanticIndex` (one scope, as one busy model with one system prompt) and times
`search` — the part of a semantic lookup after the embedding — and `add`. `embed` times all-MiniLM-L6-v2
through the gateway's embedding backend, as the cache calls it. Numbers are reported in docs/cache.md; they
are never asserted in tests. faiss-cpu is optional (`pip install faiss-cpu`): without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DIM = 384
QUERIES = 1000
SINGLE_ADDS = 1000


@dataclass
class CandidateResult:
    candidate: str
    entries: int
    build_s: float
    add_ms_p50: float
    add_ms_p99: float
    search_ms_p50: float
    search_ms_p99: float
    recall_near_duplicate: float
    recall_fresh: float
    memory_mb: float  # resident memory the build added (process RSS)
    index_mb: float  # the library's own account of its index (numpy: array bytes; faiss: serialised size)


def clustered_vectors(rng: np.random.Generator, count: int, centres: np.ndarray) -> np.ndarray:
    vectors = centres[rng.integers(0, len(centres), count)]
    vectors = vectors + 0.8 * rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1e3, 4)


class Candidate:
    """One index under test: build over all vectors, add one more, search one query for its top-1 id."""

    name = ""

    def build(self, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def add_one(self, key: int, vector: np.ndarray) -> None:
        raise NotImplementedError

    def top1(self, query: np.ndarray) -> int:
        raise NotImplementedError

    def index_mb(self) -> float:
        raise NotImplementedError


class NumpyExact(Candidate):
    name = "numpy-exact-f32"

    def build(self, vectors: np.ndarray) -> None:
        # Room to append, as a growing cache would keep it (doubling on overflow).
        self.matrix = np.empty((len(vectors) + SINGLE_ADDS, DIM), dtype=np.float32)
        self.matrix[:len(vectors)] = vectors
        self.size = len(vectors)

    def add_one(self, key: int, vector: np.ndarray) -> None:
        self.matrix[self.size] = vector
        self.size += 1

    def top1(self, query: np.ndarray) -> int:
        return int(np.argmax(self.matrix[:self.size] @ query))

    def index_mb(self) -> float:
        return self.matrix[:self.size].nbytes / 1e6


class FaissFlat(Candidate):
    name = "faiss-flat-ip"

    def build(self, vectors: np.ndarray) -> None:
        import faiss

        self.index = faiss.IndexFlatIP(DIM)
        self.index.add(vectors)

    def add_one(self, key: int, vector: np.ndarray) -> None:
        self.index.add(vector[None, :])

    def top1(self, query: np.ndarray) -> int:
        return int(self.index.search(query[None, :], 1)[1][0, 0])

    def index_mb(self) -> float:
        import faiss

        return faiss.serialize_index(self.index).nbytes / 1e6


class FaissHNSW(Candidate):
    name = "faiss-hnsw32-f32"

    def build(self, vectors: np.ndarray) -> None:
        import faiss

        self.index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = 64
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # the bulk build on every core, like usearch's
        self.index.add(vectors)
        faiss.omp_set_num_threads(1)
        self.index.hnsw.efSearch = 64

    def add_one(self, key: int, vector: np.ndarray) -> None:
        self.index.add(vector[None, :])

    def top1(self, query: np.ndarray) -> int:
        return int(self.index.search(query[None, :], 1)[1][0, 0])

    def index_mb(self) -> float:
        import faiss

        return faiss.serialize_index(self.index).nbytes / 1e6


class USearch(Candidate):
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.name = f"usearch-hnsw16-{dtype}"

    def build(self, vectors: np.ndarray) -> None:
        from usearch.index import Index

        from sluice.cache import HNSW_SETTINGS

        self.index = Index(ndim=DIM, metric="ip", dtype=self.dtype, **HNSW_SETTINGS)
        self.index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=os.cpu_count() or 1)

    def add_one(self, key: int, vector: np.ndarray) -> None:
        self.index.add(key, vector, threads=1)

    def top1(self, query: np.ndarray) -> int:
        return int(self.index.search(query, 1, threads=1).keys[0])

    def index_mb(self) -> float:
        return float(self.index.memory_usage) / 1e6


def all_candidates() -> list[Callable[[], Candidate]]:
    makers: list[Callable[[], Candidate]] = [NumpyExact]
    try:
        import faiss

        faiss.omp_set_num_threads(1)  # one query at a time on one core, as the gateway searches
        makers += [FaissFlat, FaissHNSW]
    except ImportError:
        print("faiss-cpu not installed: its candidates are skipped", file=sys.stderr)
    makers += [lambda: USearch("f32"), lambda: USearch("f16"), lambda: USearch("i8")]
    return makers


@dataclass
class Workload:
    vectors: np.ndarray
    sources: np.ndarray  # near-duplicate query i was made from vectors[sources[i]]
    near: np.ndarray
    fresh: np.ndarray
    exact_fresh: list[int]  # the true nearest neighbour of each fresh query
    extra: np.ndarray  # vectors added one by one after the build


def workload(entries: int, seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, entries // 100), DIM), dtype=np.float32)
    vectors = clustered_vectors(rng, entries, centres)
    sources = rng.integers(0, entries, QUERIES)
    near = vectors[sources] + 0.03 * rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    fresh = clustered_vectors(rng, QUERIES, centres)
    exact_fresh = np.argmax(fresh @ vectors.T, axis=1).tolist() if entries <= 100_000 else \
        [int(np.argmax(vectors @ query)) for query in fresh]
    return Workload(vectors, sources, near, fresh, exact_fresh, clustered_vectors(rng, SINGLE_ADDS, centres))


def measure(make: Callable[[], Candidate], data: Workload) -> CandidateResult:
    entries = len(data.vectors)
    candidate = make()
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    candidate.build(data.vectors)
    build_s = time.perf_counter() - started
    memory_mb = rss_mb() - before

    search_s, near_hits, fresh_hits = [], 0, 0
    for query, source in zip(data.near, data.sources, strict=True):
        started = time.perf_counter()
        found = candidate.top1(query)
        search_s.append(time.perf_counter() - started)
        near_hits += found == source
    for query, exact in zip(data.fresh, data.exact_fresh, strict=True):
        started = time.perf_counter()
        found = candidate.top1(query)
        search_s.append(time.perf_counter() - started)
        fresh_hits += found == exact
    add_s = []
    for offset, vector in enumerate(data.extra):
        started = time.perf_counter()
        candidate.add_one(entries + offset, vector)
        add_s.append(time.perf_counter() - started)
    return CandidateResult(candidate.name, entries, round(build_s, 2), percentile_ms(add_s, 50),
                           percentile_ms(add_s, 99), percentile_ms(search_s, 50), percentile_ms(search_s, 99),
                           near_hits / QUERIES, fresh_hits / QUERIES, round(memory_mb, 1),
                           round(candidate.index_mb(), 1))


def run_candidates(sizes: list[int], only: set[str] | None) -> list[dict[str, Any]]:
    results = []
    for entries in sizes:
        data = workload(entries)
        for make in all_candidates():
            if only and make().name not in only:
                continue
            result = measure(make, data)
            print(f"{result.candidate:<22} {entries:>9,}  build {result.build_s:>8.2f} s  "
                  f"add p50/p99 {result.add_ms_p50:.3f}/{result.add_ms_p99:.3f} ms  "
                  f"search p50/p99 {result.search_ms_p50:.3f}/{result.search_ms_p99:.3f} ms  "
                  f"recall near-dup {result.recall_near_duplicate:.3f} fresh {result.recall_fresh:.3f}  "
                  f"+{result.memory_mb:,.0f} MB RSS, index {result.index_mb:,.0f} MB", file=sys.stderr, flush=True)
            results.append(asdict(result))
            gc.collect()
    return results


def run_lookup(entries: int, seed: int = 1) -> dict[str, Any]:
    """The gateway's SemanticIndex at `entries` entries in one scope: search and add latency, memory."""
    from sluice.cache import SemanticIndex

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, entries // 100), DIM), dtype=np.float32)
    index = SemanticIndex(DIM, max_entries=entries + SINGLE_ADDS)
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    batch = 100_000
    for start in range(0, entries, batch):
        count = min(batch, entries - start)
        index.add_many("scope", range(start, start + count), clustered_vectors(rng, count, centres),
                       expires_at=1e18, now=0.0)
    build_s = time.perf_counter() - started
    memory_mb = rss_mb() - before
    queries = clustered_vectors(rng, QUERIES, centres)
    search_s = []
    for query in queries:
        started = time.perf_counter()
        index.search("scope", query, threshold=0.9, now=1.0)
        search_s.append(time.perf_counter() - started)
    add_s = []
    for offset, vector in enumerate(clustered_vectors(rng, SINGLE_ADDS, centres)):
        started = time.perf_counter()
        index.add("scope", entries + offset, vector, expires_at=1e18, now=2.0)
        add_s.append(time.perf_counter() - started)
    result = {"entries": entries, "build_s": round(build_s, 1), "memory_mb": round(memory_mb, 1),
              "search_ms_p50": percentile_ms(search_s, 50), "search_ms_p99": percentile_ms(search_s, 99),
              "search_ms_max": percentile_ms(search_s, 100),
              "add_ms_p50": percentile_ms(add_s, 50), "add_ms_p99": percentile_ms(add_s, 99)}
    print(f"SemanticIndex {entries:,}: build {result['build_s']} s, +{result['memory_mb']:,} MB, "
          f"search p50/p99/max {result['search_ms_p50']}/{result['search_ms_p99']}/{result['search_ms_max']} ms, "
          f"add p50/p99 {result['add_ms_p50']}/{result['add_ms_p99']} ms", file=sys.stderr)
    return result


async def _embed_times(queries: int) -> dict[str, Any]:
    from sluice.cache import Embedder

    embedder = Embedder.builtin("builtin:all-minilm-l6-v2")
    started = time.perf_counter()
    await embedder.start()
    load_s = time.perf_counter() - started
    texts = [f"How do I reset my password for account number {n}?" for n in range(queries)]
    await embedder.embed(texts[0])  # the first call pays one-off allocations
    times = []
    for text in texts:
        started = time.perf_counter()
        await embedder.embed(text)
        times.append(time.perf_counter() - started)
    await embedder.close()
    return {"queries": queries, "load_s": round(load_s, 2), "embed_ms_p50": percentile_ms(times, 50),
            "embed_ms_p99": percentile_ms(times, 99)}


def run_embed(queries: int) -> dict[str, Any]:
    result = asyncio.run(_embed_times(queries))
    print(f"MiniLM embedding per query: p50 {result['embed_ms_p50']} ms, p99 {result['embed_ms_p99']} ms "
          f"(cold load {result['load_s']} s)", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["candidates", "lookup", "embed"])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.part == "candidates":
        only = {name for name in args.only.split(",") if name} or None
        output: Any = run_candidates([int(size) for size in args.sizes.split(",")], only)
    elif args.part == "lookup":
        output = run_lookup(args.entries)
    else:
        output = run_embed(args.queries)
    if args.json:
        import json

        print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
