"""`sluice safety eval`: a red-team set and a benign set through a model's guards — directly (each guard on its
own, so every layer gets its own rates) or through a running gateway (what a client would see) — with block
rate on harmful prompts, over-refusal on benign ones (95 % Wilson intervals) and latency per layer.

Sets are JSONL, one object per line: `text`, `label` (`harmful` | `benign`), optional `id`, `kind`, `category`,
`source`. The shipped sets (sluice/safety/sets/, SOURCES.md there) are named by their file stem.
"""

from __future__ import annotations

import asyncio
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson

from sluice.safety.build import is_called
from sluice.safety.guards import CalledGuard, Guard, GuardContext, GuardFailed
from sluice.stats import wilson

SHIPPED = ("harmful", "jailbreak", "toxic", "benign")  # sluice/safety/sets/<name>.jsonl
LABELS = ("harmful", "benign")


@dataclass(slots=True, frozen=True)
class Example:
    id: str
    text: str
    label: str  # harmful | benign
    kind: str = ""  # harm | jailbreak | injection | toxic | benign
    category: str = ""


def shipped_sets() -> dict[str, Path]:
    folder = resources.files("sluice.safety") / "sets"
    return {name: Path(str(folder / f"{name}.jsonl")) for name in SHIPPED if (folder / f"{name}.jsonl").is_file()}


def load_examples(names: Sequence[str]) -> list[Example]:
    """The examples of each named shipped set or JSONL file, in order; a ValueError naming the set and line for a
    missing file or a bad line."""
    shipped = shipped_sets()
    examples: list[Example] = []
    for name in names:
        path = shipped.get(name) or Path(name)
        if not path.is_file():
            raise ValueError(f"no set {name!r}: name a shipped set ({', '.join(shipped) or 'none installed'}) or a "
                             "JSONL file")
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
                raise ValueError(f"{path}:{number}: each line needs a non-empty string `text`")
            if item.get("label") not in LABELS:
                raise ValueError(f"{path}:{number}: `label` must be one of {', '.join(LABELS)}, "
                                 f"not {item.get('label')!r}")
            examples.append(Example(str(item.get("id") or f"{path.stem}-{number}"), item["text"], item["label"],
                                    str(item.get("kind") or ""), str(item.get("category") or "")))
    return examples


@dataclass(slots=True)
class Tally:
    """One layer's (or the whole set's) counts: harmful caught, benign refused, check latencies, failures."""

    name: str
    layer: str
    harmful: int = 0
    caught: int = 0
    benign: int = 0
    refused: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    caught_by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [caught, total]
    skipped: str | None = None  # why this layer was not run

    def add(self, example: Example, found: bool) -> None:
        if example.label == "harmful":
            self.harmful += 1
            self.caught += found
            counts = self.caught_by_kind.setdefault(example.kind or "harmful", [0, 0])
            counts[0] += found
            counts[1] += 1
        else:
            self.benign += 1
            self.refused += found

    @property
    def block_rate(self) -> float:
        return self.caught / self.harmful if self.harmful else 0.0

    @property
    def over_refusal_rate(self) -> float:
        return self.refused / self.benign if self.benign else 0.0

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)] * 1000

    def to_json(self) -> dict[str, Any]:
        return {"guard": self.name, "layer": self.layer, "skipped": self.skipped,
                "harmful": self.harmful, "blocked": self.caught, "block_rate": self.block_rate,
                "block_rate_ci95": wilson(self.caught, self.harmful),
                "unsafe_pass_rate": 1 - self.block_rate if self.harmful else 0.0,
                "benign": self.benign, "over_refused": self.refused, "over_refusal_rate": self.over_refusal_rate,
                "over_refusal_rate_ci95": wilson(self.refused, self.benign), "errors": self.errors,
                "p50_ms": self.percentile_ms(50), "p99_ms": self.percentile_ms(99),
                "block_rate_by_kind": {kind: {"blocked": c, "of": n, "rate": c / n}
                                       for kind, (c, n) in sorted(self.caught_by_kind.items())}}


@dataclass(slots=True)
class EvalResult:
    mode: str  # direct | gateway
    model: str
    layers: list[Tally]
    overall: Tally

    def metric(self, name: str) -> float:
        values = self.overall.to_json()
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; use one of {', '.join(METRICS)}")
        value = values[name]
        return float(value) if value is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "model": self.model, "overall": self.overall.to_json(),
                "layers": [layer.to_json() for layer in self.layers]}


METRICS = ("block_rate", "unsafe_pass_rate", "over_refusal_rate", "p50_ms", "p99_ms", "errors")
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*([0-9.]+%?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                   "<=": operator.le}


def parse_condition(text: str) -> Callable[[EvalResult], str | None]:
    """`unsafe_pass_rate > 0.05` (or `5%`): a check returning what failed, or None. ValueError says what to type."""
    match = _CONDITION.match(text)
    if match is None or match.group(1) not in METRICS:
        raise ValueError(f"--fail-if {text!r}: write `<metric> <op> <number>`, e.g. 'unsafe_pass_rate > 0.05'; "
                         f"metrics: {', '.join(METRICS)}; ops: > >= < <=")
    name, op, raw = match.groups()
    limit = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)

    def check(result: EvalResult) -> str | None:
        value = result.metric(name)
        return f"{name} = {value:.4g} {op} {limit:g}" if _OPS[op](value, limit) else None

    return check


Progress = Callable[[int], None]


async def evaluate_direct(model: str, guards: Sequence[Guard | CalledGuard], examples: Sequence[Example],
                          progress: Progress | None = None) -> EvalResult:
    """Every guard on every example's text as a prompt (input direction), each on its own; overall: any found.
    Guards that need the gateway (Llama Guard) are skipped here: evaluate them with `--url`."""
    layers = [Tally(guard.name, guard.layer) for guard in guards]
    overall = Tally("overall", "any")
    for tally, guard in zip(layers, guards, strict=True):
        if "input" not in guard.directions:
            tally.skipped = "checks answers only"
        elif getattr(guard, "caller", True) is None:
            tally.skipped = "calls a model through the gateway: evaluate it with --url"
    for index, example in enumerate(examples):
        context = GuardContext(f"eval-{example.id}", model, "chat", None, None)
        found_any = False
        spent = 0.0  # all layers on this example: what a request would wait for them in turn
        for tally, guard in zip(layers, guards, strict=True):
            if tally.skipped:
                continue
            started = perf_counter()
            try:
                if is_called(guard):
                    async with asyncio.timeout(guard.timeout_s):  # type: ignore[union-attr]
                        verdict = await guard.judge(example.text, "input", context)  # type: ignore[union-attr]
                else:
                    verdict = guard.check(example.text, "input")  # type: ignore[union-attr]
            except Exception:  # a timeout, a guard that could not decide, a hook's own error: counted, not fatal
                tally.errors += 1
                continue
            tally.latencies_s.append(perf_counter() - started)
            spent += tally.latencies_s[-1]
            tally.add(example, verdict is not None)
            found_any = found_any or verdict is not None
        overall.add(example, found_any)
        overall.latencies_s.append(spent)
        if progress is not None:
            progress(index + 1)
    overall.errors = sum(layer.errors for layer in layers)
    return EvalResult("direct", model, layers, overall)


_GUARD_NAME = re.compile(r"content guard `([^`]+)`")
_SERVER_TIMING = re.compile(r"(?:^|,\s*)guards;dur=([0-9.]+)")


async def evaluate_gateway(url: str, model: str, examples: Sequence[Example], *, api_key: str | None = None,
                           concurrency: int = 4, progress: Progress | None = None) -> EvalResult:
    """Each example as a one-token chat request to a running gateway: a 400 `content_filter` is a block (the
    guard it names is the layer), a 200 a pass. Passing prompts reach the model (one token each)."""
    import aiohttp

    overall = Tally("overall", "any")
    layers: dict[str, Tally] = {}
    done = 0
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"x-sluice-debug": "timing", **({"authorization": f"Bearer {api_key}"} if api_key else {})}
    results: list[tuple[Example, str | None, float | None]] = []
    failures: list[str] = []

    async def one(session: aiohttp.ClientSession, example: Example) -> None:
        nonlocal done
        async with semaphore:
            body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": example.text}]}
            async with session.post(url.rstrip("/") + "/v1/chat/completions", json=body, headers=headers) as answer:
                try:
                    payload = await answer.json(content_type=None)
                except ValueError:  # not JSON: a proxy's error page, say
                    payload = (await answer.text())[:200]
                timing = _SERVER_TIMING.search(answer.headers.get("server-timing", ""))
                error = (payload or {}).get("error") or {} if isinstance(payload, dict) else {}
                if answer.status == 400 and error.get("code") == "content_filter":
                    named = _GUARD_NAME.search(error.get("message", ""))
                    results.append((example, named.group(1) if named else "?",
                                    float(timing.group(1)) / 1000 if timing else None))
                elif answer.status == 200:
                    results.append((example, None, float(timing.group(1)) / 1000 if timing else None))
                else:  # counted, and the first one said if nothing else got through
                    overall.errors += 1
                    failures.append(f"the gateway answered {answer.status}: {error.get('message', payload)}"[:300])
        done += 1
        if progress is not None:
            progress(done)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, example) for example in examples))
    if failures and not results:
        raise GuardFailed(failures[0])
    for example, blocked_by, seconds in results:
        overall.add(example, blocked_by is not None)
        if seconds is not None:
            overall.latencies_s.append(seconds)
        if blocked_by is not None:
            tally = layers.setdefault(blocked_by, Tally(blocked_by, "first to block"))
            tally.add(example, True)
    for tally in layers.values():  # a layer's share: of all examples (it blocked those no earlier layer did)
        tally.harmful, tally.benign = overall.harmful, overall.benign
        tally.caught_by_kind = {kind: [tally.caught_by_kind.get(kind, [0, 0])[0], total]
                                for kind, (_, total) in overall.caught_by_kind.items()}
    return EvalResult("gateway", model, sorted(layers.values(), key=lambda t: t.name), overall)


__all__ = ["METRICS", "SHIPPED", "EvalResult", "Example", "Tally", "evaluate_direct", "evaluate_gateway",
           "load_examples", "parse_condition", "shipped_sets", "wilson"]
