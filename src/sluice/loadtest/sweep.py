"""`bench sweep`: step one load dimension until the SLO or the error budget breaks, and say why it broke."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from sluice.loadtest.client import BenchTarget
from sluice.loadtest.datasets import DatasetSpec, make_requests
from sluice.loadtest.failures import FailureKind, describe_error
from sluice.loadtest.metrics import RequestResult, percentile_key
from sluice.loadtest.runner import LoadSettings, measure, run_config

MAX_STEPS = 64
_RANGE = re.compile(r"^\s*([0-9.]+)\s*\.\.\s*([0-9.]+)\s*([*x+])\s*([0-9.]+)\s*$")


class SweepDimension(StrEnum):
    CONCURRENCY = "concurrency"  # --max-concurrency per step
    RATE = "rate"  # --request-rate per step (req/s)
    INPUT_LEN = "input-len"  # --random-input-len per step: the context-length / memory boundary test


def parse_values(text: str, dimension: SweepDimension) -> list[float]:
    """`1,2,4,8` (a list), `1..64*2` (×2 from 1 up to 64) or `512..4096+512` (+512 steps); increasing, positive.
    Concurrency and input length must be whole numbers."""
    if match := _RANGE.match(text):
        start, stop, op, step = float(match[1]), float(match[2]), match[3], float(match[4])
        if (op in "*x" and step <= 1) or (op == "+" and step <= 0) or start <= 0 or stop < start:
            raise ValueError(f"--values {text!r}: need 0 < START <= MAX and a factor > 1 (or a step > 0)")
        values = [start]
        while len(values) <= MAX_STEPS:
            following = values[-1] * step if op in "*x" else values[-1] + step
            if following > stop * (1 + 1e-9):
                break
            values.append(following)
    else:
        try:
            values = [float(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise ValueError(f"--values {text!r}: expected 1,2,4 or START..MAX*FACTOR or START..MAX+STEP") from None
    if not values or len(values) > MAX_STEPS:
        raise ValueError(f"--values {text!r}: between 1 and {MAX_STEPS} steps")
    if any(v <= 0 or not math.isfinite(v) for v in values) or values != sorted(set(values)):
        raise ValueError(f"--values {text!r}: values must be positive and increasing")
    if dimension is not SweepDimension.RATE:
        if any(v != int(v) for v in values):
            raise ValueError(f"--values {text!r}: {dimension} steps must be whole numbers")
        values = [float(int(v)) for v in values]
    return values


def step_load(dimension: SweepDimension, value: float, settings: LoadSettings,
              spec: DatasetSpec) -> tuple[LoadSettings, DatasetSpec]:
    """The run settings and dataset of the step at `value`."""
    if dimension is SweepDimension.CONCURRENCY:
        return replace(settings, max_concurrency=int(value)), spec
    if dimension is SweepDimension.RATE:
        return replace(settings, request_rate=value), spec
    return settings, spec.with_input_len(int(value))


@dataclass(slots=True, frozen=True)
class StepVerdict:
    passed: bool
    kind: FailureKind | None = None  # why it failed: errors first, else latency
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "kind": self.kind.value if self.kind else None, "reasons": list(self.reasons)}


def judge_step(result: Mapping[str, Any], *, slos_ms: Mapping[str, float], percentile: float,
               max_error_rate: float) -> StepVerdict:
    """Pass when the error rate is at most `max_error_rate` and every SLO holds at `percentile`
    (p99 TTFT ≤ the TTFT SLO, ...). A step where no request completed always fails."""
    requests, failed = int(result["num_prompts"]), int(result["failed"])
    error_rate = failed / requests if requests else 1.0
    reasons: list[str] = []
    kind: FailureKind | None = None
    if failed and (error_rate > max_error_rate or failed == requests):
        by_kind: Mapping[str, int] = result.get("errors_by_kind") or {}
        kind = FailureKind(max(by_kind, key=lambda k: by_kind[k])) if by_kind else FailureKind.CONNECTION
        by_class: Mapping[str, int] = result.get("errors_by_class") or {}
        examples: Mapping[str, str] = result.get("error_examples") or {}
        top = sorted(by_class.items(), key=lambda item: -item[1])[:3]
        detail = "; ".join(f"{count} × {describe_error(error, examples.get(error))}" for error, count in top)
        reasons.append(f"error rate {error_rate:.1%} > {max_error_rate:.1%} ({detail})")
    if failed < requests:
        key = percentile_key(percentile)
        for metric, slo_ms in slos_ms.items():
            value = float(result[f"p{key}_{metric}_ms"])
            if value > slo_ms:
                reasons.append(f"P{key} {metric.upper()} {value:.1f} ms > SLO {slo_ms:g} ms")
                kind = kind or FailureKind.LATENCY
    return StepVerdict(passed=not reasons, kind=kind, reasons=tuple(reasons))


@dataclass(slots=True, frozen=True)
class SweepStep:
    value: float
    result: dict[str, Any]
    verdict: StepVerdict


@dataclass(slots=True, frozen=True)
class SweepOutcome:
    holding: float | None  # the largest load holding the SLO, below the first failing step
    broke_at: float | None
    kind: FailureKind | None
    reason: str | None

    def to_dict(self) -> dict[str, object]:
        return {"largest_passing": _plain(self.holding), "broke_at": _plain(self.broke_at),
                "broke_kind": self.kind.value if self.kind else None, "broke_reason": self.reason}


def sweep_outcome(steps: Sequence[SweepStep]) -> SweepOutcome:
    """Where the sweep broke: the first failing step, and the largest passing step before it."""
    holding: float | None = None
    for step in steps:
        if not step.verdict.passed:
            return SweepOutcome(holding, step.value, step.verdict.kind, "; ".join(step.verdict.reasons))
        holding = step.value
    return SweepOutcome(holding, None, None, None)


@dataclass(slots=True, frozen=True)
class SweepPlan:
    dimension: SweepDimension
    values: tuple[float, ...]
    spec: DatasetSpec
    settings: LoadSettings
    slos_ms: Mapping[str, float]
    slo_percentile: float = 99.0
    max_error_rate: float = 0.01
    keep_going: bool = False  # run every step, even after one fails

    def describe(self) -> dict[str, object]:
        return {"dimension": self.dimension.value, "values": [_plain(value) for value in self.values],
                "slo_percentile": self.slo_percentile, "goodput": dict(self.slos_ms) or None,
                "max_error_rate": self.max_error_rate, "keep_going": self.keep_going}


class SweepProgress(Protocol):
    """Hooks the sweep calls as it goes (the CLI's progress bars)."""

    def step_started(self, index: int, value: float, requests: int | None) -> None: ...
    def request_done(self, result: RequestResult) -> None: ...
    def step_done(self, step: SweepStep) -> None: ...


class _Quiet:
    def step_started(self, index: int, value: float, requests: int | None) -> None:
        pass

    def request_done(self, result: RequestResult) -> None:
        pass

    def step_done(self, step: SweepStep) -> None:
        pass


async def run_sweep(target: BenchTarget, plan: SweepPlan, *, percentiles: Sequence[float],
                    progress: SweepProgress | None = None) -> list[SweepStep]:
    """Measure each step in turn; stop after the first failing one unless `plan.keep_going`."""
    progress = progress or _Quiet()
    steps: list[SweepStep] = []
    for index, value in enumerate(plan.values):
        settings, spec = step_load(plan.dimension, value, plan.settings, plan.spec)
        requests = make_requests(spec, settings.num_prompts, model=target.model, seed=settings.seed)
        progress.step_started(index, value, None if settings.duration_s else len(requests))
        on_result: Callable[[RequestResult], None] = progress.request_done
        result = await measure(target, requests, settings, percentiles=percentiles, slos_ms=plan.slos_ms,
                               on_result=on_result)
        verdict = judge_step(result, slos_ms=plan.slos_ms, percentile=plan.slo_percentile,
                             max_error_rate=plan.max_error_rate)
        step_result = {**run_config(target, spec, settings, plan.slos_ms), "sweep_value": _plain(value), **result,
                       "verdict": verdict.to_dict()}
        steps.append(SweepStep(value, step_result, verdict))
        progress.step_done(steps[-1])
        if not verdict.passed and not plan.keep_going:
            break
    return steps


def sweep_document(config: Mapping[str, object], plan: SweepPlan, steps: Sequence[SweepStep],
                   warmup_requests: int) -> dict[str, Any]:
    """One JSON for the whole sweep: its configuration, its verdict, and each step as a vLLM-style result."""
    return {**config, "warmup_requests": warmup_requests,
            "sweep": {**plan.describe(), **sweep_outcome(steps).to_dict()},
            "steps": [step.result for step in steps]}


def _plain(value: float | None) -> float | int | None:
    return int(value) if value is not None and value == int(value) else value
