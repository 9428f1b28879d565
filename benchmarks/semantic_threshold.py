"""Threshold study for the semantic cache: precision / recall of "similarity >= t" (and of the prompt check).

    python benchmarks/semantic_threshold.py [--pairs F ...] [--json] [--plot docs/img/semantic-threshold.png]

Each pair in a JSONL file is {"a", "b", "label", "kind", "domain"}: label 1 when one answer serves both
prompts (a paraphrase), 0 otherwise — hard negatives (same topic, different question; negation; other
entities or numbers; reversed direction) and unrelated prompts. Both texts are embedded with all-MiniLM-L6-v2
exactly as the cache embeds a prompt (`sluice.cache.Embedder`), and a pair is a predicted hit when their cosine
similarity reaches the threshold — and, with the guard, when `sluice.cache.guard.compatible` also accepts it.
A false positive is a wrong cached answer; a false negative only a missed saving. Reported: the lowest
threshold whose precision over all files pooled is >= 0.95 at it and every higher threshold, and every
file's numbers at the configured default (`cache.semantic.threshold`; docs/cache.md says why it is where it is).

Files (benchmarks/data/): paraphrase_pairs.jsonl (319 pairs; the guard's rules were written against it),
paraphrase_pairs_holdout.jsonl (240; written apart, looked at once while the rules were refined) and
paraphrase_pairs_fresh.jsonl (200; written apart, first run after the rules were frozen).
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

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_PAIRS = [DATA / "paraphrase_pairs.jsonl", DATA / "paraphrase_pairs_holdout.jsonl",
                 DATA / "paraphrase_pairs_fresh.jsonl"]
TARGET_PRECISION = 0.95
THRESHOLDS = [round(t, 2) for t in np.arange(0.60, 0.985, 0.01)]


@dataclass
class Row:
    threshold: float
    precision: float
    recall: float
    f1: float
    hits: int  # pairs predicted hits
    false_hits: int  # of which non-paraphrases (wrong answers served)


@dataclass
class Labelled:
    name: str
    pairs: list[dict[str, Any]]
    similarities: np.ndarray
    labels: np.ndarray
    guard_ok: np.ndarray  # the prompt check's verdict per pair

    def table(self, guarded: bool) -> list[Row]:
        return [self.row(threshold, guarded) for threshold in THRESHOLDS]

    def row(self, threshold: float, guarded: bool) -> Row:
        predicted = self.similarities >= threshold
        if guarded:
            predicted &= self.guard_ok
        positives = int(self.labels.sum())
        true_hits = int((predicted & (self.labels == 1)).sum())
        hits = int(predicted.sum())
        precision = true_hits / hits if hits else 1.0
        recall = true_hits / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return Row(threshold, round(precision, 3), round(recall, 3), round(f1, 3), hits, hits - true_hits)

    def false_hits_by_kind(self, threshold: float, guarded: bool) -> dict[str, int]:
        return dict(Counter(pair["kind"] for pair, s, ok in zip(self.pairs, self.similarities, self.guard_ok,
                                                                strict=True)
                            if s >= threshold and (ok or not guarded) and pair["label"] == 0))


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


MIN_HITS = 20  # a threshold with fewer hits says little about precision (one false hit in four is "0.75")


def qualifying(rows: list[Row]) -> list[float]:
    """Thresholds where precision reaches TARGET_PRECISION (over at least MIN_HITS hits). Not a band: the most
    similar pairs include the hardest negatives (swapped words), so precision dips again near 1.0."""
    return [row.threshold for row in rows if row.precision >= TARGET_PRECISION and row.hits >= MIN_HITS]


def spans(thresholds: list[float]) -> str:
    """[0.8, 0.81, 0.82, 0.9] -> "0.80–0.82, 0.90"."""
    parts: list[list[float]] = []
    for threshold in thresholds:
        if parts and round(threshold - parts[-1][-1], 2) <= 0.01:
            parts[-1].append(threshold)
        else:
            parts.append([threshold])
    return ", ".join(f"{p[0]:.2f}" if len(p) == 1 else f"{p[0]:.2f}–{p[-1]:.2f}" for p in parts) or "none"


def plot(sets: list[Labelled], chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, metric in zip(axes, ("precision", "recall"), strict=True):
        for index, labelled in enumerate(sets):
            color = f"C{index}"
            for guarded, style in ((True, "-"), (False, ":")):
                values = [getattr(row, metric) for row in labelled.table(guarded)]
                label = f"{labelled.name}{' + guard' if guarded else ' (similarity only)'}"
                axis.plot(THRESHOLDS, values, style, color=color, label=label)
        axis.axvline(chosen, color="grey", linewidth=0.8)
        if metric == "precision":
            axis.axhline(TARGET_PRECISION, color="red", linewidth=0.8, linestyle="--")
        axis.set_title(f"{metric} of a semantic hit (all-MiniLM-L6-v2)")
        axis.set_xlabel("cosine similarity threshold")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    from sluice.cache.guard import compatible
    from sluice.config import SemanticCacheConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, nargs="+", default=[p for p in DEFAULT_PAIRS if p.exists()],
                        help="labelled JSONL files; the first is the tuning set")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, help="write precision/recall curves to this PNG")
    args = parser.parse_args()
    loaded = {path: load_pairs(path) for path in args.pairs}
    texts = sorted({pair[side] for pairs in loaded.values() for pair in pairs for side in ("a", "b")})
    vectors = asyncio.run(embed_all(texts))
    sets = [Labelled(path.stem.removeprefix("paraphrase_pairs").strip("_") or "tuning", pairs,
                     np.array([float(vectors[pair["a"]] @ vectors[pair["b"]]) for pair in pairs]),
                     np.array([int(pair["label"]) for pair in pairs]),
                     np.array([compatible(pair["a"], pair["b"]) for pair in pairs]))
            for path, pairs in loaded.items()]
    pooled = Labelled("pooled", [pair for labelled in sets for pair in labelled.pairs],
                      *(np.concatenate([getattr(labelled, field) for labelled in sets])
                        for field in ("similarities", "labels", "guard_ok")))
    everything = [*sets, pooled] if len(sets) > 1 else sets
    good = qualifying(pooled.table(guarded=True))
    default = SemanticCacheConfig().threshold
    summary = {labelled.name: {"pairs": len(labelled.pairs), "paraphrases": int(labelled.labels.sum()),
                               "guarded": asdict(labelled.row(default, True)),
                               "similarity_only": asdict(labelled.row(default, False)),
                               "false_hits_by_kind": labelled.false_hits_by_kind(default, True)}
               for labelled in everything}
    if args.plot is not None:
        plot(sets, default, args.plot)
    if args.json:
        print(json.dumps({"default": default, "pooled_precision_target_met_at": good, "sets": summary,
                          "tables": {labelled.name: {"guarded": [asdict(r) for r in labelled.table(True)],
                                                     "similarity_only": [asdict(r) for r in labelled.table(False)]}
                                     for labelled in everything}}, indent=2))
        return
    names = [labelled.name for labelled in everything]
    print(f"{len(pooled.pairs)} pairs in {len(sets)} files, all-MiniLM-L6-v2; precision / recall per threshold, "
          "similarity only, then with the guard\n")
    print("| threshold | " + " | ".join(f"{name}: similarity | + guard" for name in names) + " |")
    print("|---:|" + "---:|---:|" * len(names))
    for index, threshold in enumerate(THRESHOLDS):
        if round(threshold * 100) % 2 and threshold != default:
            continue  # every other row, keeping the ones that matter
        mark = " (default)" if threshold == default else ""
        cells = []
        for labelled in everything:
            raw, guarded = labelled.table(False)[index], labelled.table(True)[index]
            cells.append(f"{raw.precision:.3f} / {raw.recall:.3f} | **{guarded.precision:.3f}** / {guarded.recall:.3f}")
        print(f"| {threshold:.2f}{mark} | " + " | ".join(cells) + " |")
    print(f"\npooled precision >= {TARGET_PRECISION} (over >= {MIN_HITS} hits) at: similarity alone "
          f"{spans(qualifying(pooled.table(guarded=False)))}; with the guard {spans(good)}")
    print(f"at the default {default:.2f}:")
    print("| set | pairs | precision | recall | false hits | similarity only: precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in summary.items():
        guarded, raw = row["guarded"], row["similarity_only"]
        print(f"| {name} | {row['pairs']} | {guarded['precision']:.3f} | {guarded['recall']:.3f} "
              f"| {guarded['false_hits']} | {raw['precision']:.3f} | {raw['recall']:.3f} |")
    print("\nfalse hits at the default, by kind:",
          {name: row["false_hits_by_kind"] for name, row in summary.items() if name != "pooled"})


if __name__ == "__main__":
    main()
