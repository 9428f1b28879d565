"""Threshold study for the semantic cache: precision / recall / F1 of "similarity >= t" on labelled pairs.

    python benchmarks/semantic_threshold.py [--pairs benchmarks/data/paraphrase_pairs.jsonl] [--json]

Each pair in the JSONL file is {"a", "b", "label", "kind", "domain"}: label 1 when one answer serves both
prompts (a paraphrase), 0 otherwise — hard negatives (same topic, different question; negation; other
entities or numbers) and unrelated prompts. Both texts are embedded with all-MiniLM-L6-v2 exactly as the
cache embeds a prompt (`sluice.cache.Embedder`, the in-process sentence-transformers backend), and a pair is
a predicted hit when their cosine similarity reaches the threshold. A false positive is a wrong cached answer;
a false negative only a missed saving — so the default is the lowest threshold whose precision is >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DEFAULT_PAIRS = Path(__file__).resolve().parent / "data" / "paraphrase_pairs.jsonl"
TARGET_PRECISION = 0.95


@dataclass
class Row:
    threshold: float
    precision: float
    recall: float
    f1: float
    hits: int  # pairs at or above the threshold
    false_hits: int  # of which non-paraphrases (wrong answers served)


def load_pairs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def embed_all(texts: list[str]) -> dict[str, np.ndarray]:
    from sluice.cache import Embedder

    embedder = Embedder.builtin("builtin:all-minilm-l6-v2")
    await embedder.start()
    try:
        return {text: await embedder.embed(text) for text in texts}
    finally:
        await embedder.close()


def table(similarities: np.ndarray, labels: np.ndarray, thresholds: list[float]) -> list[Row]:
    rows = []
    positives = int(labels.sum())
    for threshold in thresholds:
        predicted = similarities >= threshold
        true_hits = int((predicted & (labels == 1)).sum())
        hits = int(predicted.sum())
        precision = true_hits / hits if hits else 1.0
        recall = true_hits / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(Row(round(threshold, 2), round(precision, 3), round(recall, 3), round(f1, 3), hits,
                        hits - true_hits))
    return rows


def choose(rows: list[Row]) -> Row:
    """The lowest threshold (most hits) with precision >= TARGET_PRECISION at it and at every higher one."""
    ok = [row for row in rows if all(higher.precision >= TARGET_PRECISION for higher in rows
                                     if higher.threshold >= row.threshold)]
    return min(ok, key=lambda row: row.threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pairs = load_pairs(args.pairs)
    texts = sorted({pair[side] for pair in pairs for side in ("a", "b")})
    vectors = asyncio.run(embed_all(texts))
    similarities = np.array([float(vectors[pair["a"]] @ vectors[pair["b"]]) for pair in pairs])
    labels = np.array([int(pair["label"]) for pair in pairs])
    thresholds = [round(t, 2) for t in np.arange(0.60, 0.99, 0.02)]
    rows = table(similarities, labels, thresholds)
    chosen = choose(rows)
    by_kind = {kind: round(float(np.mean([s for s, p in zip(similarities, pairs, strict=True) if p["kind"] == kind])),
                           3)
               for kind in sorted({pair["kind"] for pair in pairs})}
    false_at_chosen = Counter(pair["kind"] for s, pair in zip(similarities, pairs, strict=True)
                              if s >= chosen.threshold and pair["label"] == 0)
    worst = sorted(((float(s), pair["a"], pair["b"]) for s, pair in zip(similarities, pairs, strict=True)
                    if pair["label"] == 0), reverse=True)[:8]
    if args.json:
        print(json.dumps({"pairs": len(pairs), "paraphrases": int(labels.sum()), "chosen": asdict(chosen),
                          "table": [asdict(row) for row in rows], "mean_similarity_by_kind": by_kind,
                          "false_hits_at_chosen_by_kind": dict(false_at_chosen),
                          "closest_non_paraphrases": worst}, indent=2))
        return
    print(f"{len(pairs)} pairs ({int(labels.sum())} paraphrases), all-MiniLM-L6-v2\n")
    print("| threshold | precision | recall | F1 | hits | false hits |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        mark = " **←**" if row is chosen else ""
        print(f"| {row.threshold:.2f}{mark} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | {row.hits} "
              f"| {row.false_hits} |")
    print(f"\nchosen: {chosen.threshold:.2f} (lowest threshold with precision >= {TARGET_PRECISION} from there up)")
    print("mean similarity by kind:", ", ".join(f"{kind} {value}" for kind, value in by_kind.items()))
    print("false hits at the chosen threshold by kind:", dict(false_at_chosen) or "none")
    print("closest non-paraphrases:")
    for similarity, a, b in worst:
        print(f"  {similarity:.3f}  {a!r} / {b!r}")


if __name__ == "__main__":
    main()
