"""Block and over-refusal rates of the offline guard layers, on three kinds of data (docs/safety.md#measured):

- `design`: the even lines of the shipped sets (src/sluice/safety/sets/), which the injection heuristics and the
  toxicity threshold were tuned on — expect these numbers to flatter;
- `untouched`: the odd lines of the same sets, not read until the rules were frozen;
- `blind`: benchmarks/data/safety_holdout/holdout.jsonl, written on 2026-12-07 by someone who had not seen the
  rules, before they were designed (its README).

Each layer sees every text as a prompt, on its own. Rates are per kind of harm (a toxicity layer is not meant
to catch jailbreaks), with 95 % Wilson intervals.

    .venv/bin/python benchmarks/guard_eval.py [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from sluice.config import parse_config
from sluice.safety import Example, build_guard, evaluate_direct, load_examples, shipped_sets, wilson

HOLDOUT = Path(__file__).parent / "data" / "safety_holdout" / "holdout.jsonl"
LAYERS: dict[str, dict[str, Any]] = {
    "injection": {"type": "injection"},
    "toxicity": {"type": "toxicity"},
    "pii": {"type": "pii", "presidio": True},
    "keyword-demo": {"type": "keyword", "words": ["bomb", "explosive", "meth", "nerve agent", "kill", "suicide"],
                     "allow": ["kill the process", "kill process", "bath bomb"]},
}


def splits() -> dict[str, list[Example]]:
    shipped = list(shipped_sets())
    examples = load_examples(shipped)
    by_set: dict[str, list[Example]] = {}
    for example in examples:
        by_set.setdefault(example.id.rsplit("-", 1)[0], []).append(example)
    design = [e for rows in by_set.values() for i, e in enumerate(rows) if i % 2 == 0]
    untouched = [e for rows in by_set.values() for i, e in enumerate(rows) if i % 2 == 1]
    return {"design": design, "untouched": untouched, "blind": load_examples([str(HOLDOUT)])}


def rate(hits: int, total: int) -> str:
    if not total:
        return "-"
    low, high = wilson(hits, total)
    return f"{hits}/{total} = {hits / total:.0%} [{low:.0%}, {high:.0%}]"


async def main() -> dict[str, Any]:
    config = parse_config({"safety": {"guards": LAYERS}})
    guards = [build_guard(name, guard) for name, guard in config.safety.guards.items()]
    report: dict[str, Any] = {}
    for split, examples in splits().items():
        result = await evaluate_direct("eval", guards, examples)
        report[split] = result.to_json()
        print(f"\n## {split}: {len(examples)} texts")
        kinds = sorted({e.kind for e in examples if e.label == "harmful"})
        print("| layer | " + " | ".join(f"caught: {kind}" for kind in kinds) + " | benign refused | p50 / p99 ms |")
        print("|---" * (len(kinds) + 3) + "|")
        for tally in [*result.layers, result.overall]:
            cells = [rate(*tally.caught_by_kind.get(kind, [0, 0])) for kind in kinds]
            p50, p99 = tally.percentile_ms(50), tally.percentile_ms(99)
            timing = f"{p50:.3f} / {p99:.3f}" if p50 is not None and p99 is not None else "-"
            print(f"| {tally.name} | " + " | ".join(cells) + f" | {rate(tally.refused, tally.benign)} | {timing} |")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args()
    out = asyncio.run(main())
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
