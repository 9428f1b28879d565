"""Structured output over the shipped schema suite (benchmarks/data/schemas), per backend and mode.

    python benchmarks/structured.py                                  # the simulator, every case
    python benchmarks/structured.py --backends local-guided,local-prompted --limit 40
    python benchmarks/structured.py --url http://gateway:4000 --model chat --limit 100   # any gateway (real vLLM)

Each case is one chat request with `response_format: json_schema` (the case's schema, `strict` as the case says)
through a gateway in this process (or the one at `--url`). Per backend:

- coverage: the share of schemas the path accepts (not refused with a 400: a schema its compiler cannot take);
- validity: the share of accepted requests answered with a valid answer (the gateway's verdict, re-checked here
  with jsonschema), with its 95 % Wilson interval; how they came out (guided / validated / repaired / reasked /
  failed); mean attempts;
- latency: P50 / P95 end to end as the client sees it, and P50 of the `structured` stage's own time (the
  gateway's checking, from Server-Timing) — what the enforcement adds beyond the model's tokens;
- tokens: mean completion tokens per request, every attempt included.

Backends: `sim` (the simulator: an H100 serving Llama 3.1 8B, guided), `local-guided` (SmolLM2-135M on CPU under
llguidance), `local-prompted` (the same model with the schema in the prompt, validated, repaired, re-asked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: the in-process gateway

from tests.support.gateway import run_gateway

from sluice.safety import wilson

SUITE = Path(__file__).parent / "data" / "schemas" / "suite.jsonl"
BACKENDS: dict[str, tuple[dict[str, Any], str, int]] = {  # name -> (backend config, upstream model, concurrency)
    "sim": ({"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm"}, "llama-3.1-8b", 16),
    "local-guided": ({"type": "gguf", "path": "builtin:smollm2"}, "smollm2", 1),
    "local-prompted": ({"type": "gguf", "path": "builtin:smollm2", "structured_output": "none"}, "smollm2", 1),
}


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0  # 400: the schema was not taken
    valid: int = 0
    errors: int = 0  # other statuses (502 after every attempt, 5xx)
    modes: Counter[str] = field(default_factory=Counter)
    attempts: list[int] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)
    stage_ms: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)

    def add(self, case: dict[str, Any], response: httpx.Response, e2e_s: float) -> None:
        self.sent += 1
        self.e2e_s.append(e2e_s)
        self.stage_ms.extend(_stage_ms(response.headers.get("server-timing", "")))
        if response.status_code == 400:
            self.refused += 1
            return
        self.attempts.append(int(response.headers.get("x-sluice-structured-attempts") or 1))
        if response.status_code != 200:
            self.errors += 1
            self.modes[response.headers.get("x-sluice-structured-mode") or str(response.status_code)] += 1
            return
        body = response.json()
        self.completion_tokens.append((body.get("usage") or {}).get("completion_tokens") or 0)
        verdict = body.get("structured_output") or {}
        self.modes[verdict.get("mode", "none")] += 1
        content = body["choices"][0]["message"].get("content") or ""
        try:
            errors = list(Draft202012Validator(case["schema"]).iter_errors(json.loads(content)))
        except json.JSONDecodeError:
            errors = [content]
        if not errors:
            self.valid += 1

    def row(self, name: str) -> str:
        accepted = self.sent - self.refused
        low, high = wilson(self.valid, accepted)
        e2e = sorted(self.e2e_s)
        p95 = e2e[min(len(e2e) - 1, int(0.95 * len(e2e)))] if e2e else 0.0
        modes = ", ".join(f"{mode} {count}" for mode, count in self.modes.most_common())
        return (f"{name:<16}{self.sent:>5}{accepted / max(1, self.sent):>9.1%}{self.valid / max(1, accepted):>9.1%}"
                f"  ({low:.2f}–{high:.2f}){_mean(self.attempts):>7.2f}{_median(e2e):>8.2f}{p95:>8.2f}"
                f"{_median(self.stage_ms):>9.2f}{_mean(self.completion_tokens):>8.0f}   {modes}")


def _stage_ms(header: str) -> list[float]:
    for part in header.split(", "):
        name, _, value = part.partition(";dur=")
        if name == "structured":
            return [float(value)]
    return []


def _mean(values: list[int]) -> float:
    return statistics.fmean(values) if values else 0.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def run_cases(url: str, model: str, cases: list[dict[str, Any]], concurrency: int, max_tokens: int) -> Tally:
    tally = Tally()

    def one(case: dict[str, Any]) -> tuple[dict[str, Any], httpx.Response, float]:
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0.7, "seed": 7,
                "messages": [{"role": "user", "content": case["prompt"]}],
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": case["id"][:64], "schema": case["schema"], "strict": case["strict"]}}}
        started = time.perf_counter()
        response = client.post(url + "/v1/chat/completions", json=body, headers={"x-sluice-debug": "timing"})
        return case, response, time.perf_counter() - started

    with httpx.Client(timeout=600) as client, ThreadPoolExecutor(concurrency) as pool:
        for done, (case, response, e2e_s) in enumerate(pool.map(one, cases), 1):
            tally.add(case, response, e2e_s)
            print(f"\r  {done}/{len(cases)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sim", help=f"comma-separated: {', '.join(BACKENDS)}")
    parser.add_argument("--limit", type=int, default=0, help="the first N cases of each difficulty in turn (0: all)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--url", help="a running gateway instead of one in this process")
    parser.add_argument("--model", default="chat", help="with --url: the model to ask")
    parser.add_argument("--concurrency", type=int, default=4, help="with --url: requests in flight")
    args = parser.parse_args()
    cases = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()]
    if args.limit:
        by_difficulty = {level: [c for c in cases if c["difficulty"] == level] for level in ("easy", "medium", "hard")}
        cases = [c for group in zip(*by_difficulty.values(), strict=False) for c in group][:args.limit]
    print(f"{len(cases)} cases from {SUITE.relative_to(Path.cwd()) if SUITE.is_relative_to(Path.cwd()) else SUITE}")
    print(f"{'backend':<16}{'sent':>5}{'coverage':>9}{'valid':>9}  {'(95 % CI)':<11}{'tries':>7}{'P50 s':>8}"
          f"{'P95 s':>8}{'check ms':>9}{'tokens':>8}   modes")
    if args.url:
        print(run_cases(args.url.rstrip("/"), args.model, cases, args.concurrency, args.max_tokens).row(args.model))
        return
    for name in args.backends.split(","):
        backend, upstream_model, concurrency = BACKENDS[name]
        with tempfile.TemporaryDirectory() as tmp:
            config = {"store": {"url": f"sqlite:///{Path(tmp) / 'log.db'}"}, "backends": {"b": backend},
                      "models": {"m": {"targets": [{"backend": "b", "model": upstream_model}],
                                       "cache": {"exact": {"enabled": False}}}}}
            with run_gateway(config) as gateway:
                httpx.get(gateway.url + "/health/ready", timeout=300)
                tally = run_cases(gateway.url, "m", cases, concurrency, args.max_tokens)
        print(tally.row(name))


if __name__ == "__main__":
    main()
