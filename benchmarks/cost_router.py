"""Cost-based routing study: the default difficulty classifier on labelled prompts — accuracy, share sent to
the cheap model, cost against sending everything to the strong model, misroutes, µs per classification.

    python benchmarks/cost_router.py [--prompts benchmarks/data/difficulty_prompts.jsonl] [--threshold 0.5]
                                     [--cheap gpt-4o-mini] [--strong gpt-4o] [--output-tokens 300] [--json]

Each line of the JSONL file is {"label": "easy" | "hard", "domain", "messages"}. Prices come from the built-in
catalog (src/sluice/catalog/prices.yaml); prompt tokens are counted with the gateway's tokenizer fallback and
every answer is assumed to be `--output-tokens` long. An easy prompt sent to the strong model only costs
money; a hard prompt sent to the cheap model costs quality — so the misroute rates are reported apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sluice.catalog import builtin_prices
from sluice.cost import count_message_tokens
from sluice.routing.difficulty_router import Turn, rules_score

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "data" / "difficulty_prompts.jsonl"


@dataclass
class Report:
    prompts: int
    easy_labelled: int
    threshold: float
    accuracy: float
    cheap_share: float  # of all prompts, routed to the cheap model
    hard_to_cheap_rate: float  # of hard prompts, sent to the cheap model (quality risk)
    easy_to_strong_rate: float  # of easy prompts, sent to the strong model (money left on the table)
    cost_all_strong_usd: float
    cost_routed_usd: float
    cost_saved_share: float
    cost_oracle_usd: float  # a perfect classifier's cost, for scale
    us_per_classification: float


def load(path: Path) -> list[tuple[str, list[Turn]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append((item["label"], [Turn(m["role"], m["content"]) for m in item["messages"]]))
    return rows


def cost_usd(model: str, prompt_tokens: int, output_tokens: int) -> float:
    entry = builtin_prices().lookup(model)
    if entry is None:
        raise SystemExit(f"no price for {model!r} in the built-in catalog")
    return (prompt_tokens * entry.price.input_usd_per_1m + output_tokens * entry.price.output_usd_per_1m) / 1e6


def study(rows: list[tuple[str, list[Turn]]], threshold: float, cheap: str, strong: str,
          output_tokens: int) -> Report:
    scores = [rules_score(turns) for _, turns in rows]
    started = time.perf_counter()
    repeats = 200
    for _ in range(repeats):
        for _, turns in rows:
            rules_score(turns)
    us_each = (time.perf_counter() - started) / (repeats * len(rows)) * 1e6
    hard_pred = [score >= threshold for score in scores]
    labels = [label == "hard" for label, _ in rows]
    tokens = [count_message_tokens([{"role": t.role, "content": t.text} for t in turns], strong)
              for _, turns in rows]
    all_strong = sum(cost_usd(strong, n, output_tokens) for n in tokens)
    routed = sum(cost_usd(strong if hard else cheap, n, output_tokens)
                 for n, hard in zip(tokens, hard_pred, strict=True))
    oracle = sum(cost_usd(strong if hard else cheap, n, output_tokens) for n, hard in zip(tokens, labels, strict=True))
    hard_count = sum(labels)
    easy_count = len(rows) - hard_count
    return Report(
        prompts=len(rows), easy_labelled=easy_count, threshold=threshold,
        accuracy=sum(p == y for p, y in zip(hard_pred, labels, strict=True)) / len(rows),
        cheap_share=sum(not p for p in hard_pred) / len(rows),
        hard_to_cheap_rate=sum(y and not p for p, y in zip(hard_pred, labels, strict=True)) / hard_count,
        easy_to_strong_rate=sum(p and not y for p, y in zip(hard_pred, labels, strict=True)) / easy_count,
        cost_all_strong_usd=all_strong, cost_routed_usd=routed, cost_saved_share=1 - routed / all_strong,
        cost_oracle_usd=oracle, us_per_classification=us_each,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--cheap", default="gpt-4o-mini")
    parser.add_argument("--strong", default="gpt-4o")
    parser.add_argument("--output-tokens", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = load(args.prompts)
    reports = [study(rows, t, args.cheap, args.strong, args.output_tokens)
               for t in sorted({0.3, 0.4, 0.5, 0.6, 0.7, args.threshold})]
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=2))
        return
    first = reports[0]
    print(f"{first.prompts} prompts ({first.easy_labelled} easy), {args.cheap} vs {args.strong}, "
          f"{args.output_tokens} output tokens each, {first.us_per_classification:.1f} µs per classification")
    print(f"{'threshold':>9} {'accuracy':>8} {'cheap':>6} {'hard→cheap':>10} {'easy→strong':>11} "
          f"{'routed $':>9} {'all-strong $':>12} {'saved':>6} {'oracle $':>9}")
    for r in reports:
        print(f"{r.threshold:>9.2f} {r.accuracy:>8.1%} {r.cheap_share:>6.1%} {r.hard_to_cheap_rate:>10.1%} "
              f"{r.easy_to_strong_rate:>11.1%} {r.cost_routed_usd:>9.4f} {r.cost_all_strong_usd:>12.4f} "
              f"{r.cost_saved_share:>6.1%} {r.cost_oracle_usd:>9.4f}")


if __name__ == "__main__":
    main()
