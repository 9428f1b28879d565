"""`bench compare`: metric deltas between two run results, and `--fail-if` rules for a CI performance gate."""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.loadtest.tables import result_percentiles

LATENCIES = ("ttft", "tpot", "itl", "e2el")
SHORT_NAMES = {"throughput": "request_throughput", "goodput": "request_goodput",
               "tokens_per_s": "output_throughput"}
DERIVED = ("error_rate",)
HIGHER_IS_BETTER = {"request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
                    "completed"}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                         "<": operator.lt}
_RULE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(>=|<=|>|<)\s*([+-]?)\s*([0-9]*\.?[0-9]+)\s*(%|ms|s)?\s*$")
_ALIAS = re.compile(rf"^({'|'.join(LATENCIES)})_(mean|median|std|p\d+(?:\.\d+)?)$")


class CompareError(ValueError):
    """Bad input to `bench compare`: an unreadable file, an unknown metric, a malformed rule (exit 2)."""


def load_result(path: Path) -> dict[str, Any]:
    """A run result file; a sweep file or anything else is refused with a message naming the file."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CompareError(f"{path} is not a bench result (expected a JSON object)")
    if "steps" in data:
        raise CompareError(f"{path} is a sweep result; compare two `bench run` results")
    if "completed" not in data or "request_throughput" not in data:
        raise CompareError(f"{path} is not a bench result (no completed / request_throughput fields)")
    return data


def resolve_metric(name: str) -> str:
    """A result field name from a metric name or short alias: ttft_p99 -> p99_ttft_ms, throughput -> ..."""
    if match := _ALIAS.match(name):
        return f"{match[2]}_{match[1]}_ms"
    return SHORT_NAMES.get(name, name)


def metric_value(result: Mapping[str, Any], field: str) -> float | None:
    """The field's number (None when missing or null); `error_rate` is failed / requests when not stored."""
    if field == "error_rate" and "error_rate" not in result:
        requests = int(result.get("num_prompts") or 0) or int(result["completed"]) + int(result["failed"])
        return int(result["failed"]) / requests if requests else 0.0
    if field.startswith("p50_") and field not in result:  # p50 is the median when 50 was not asked for
        field = "median_" + field.removeprefix("p50_")
    value = result.get(field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def relative_change_pct(a: float, b: float) -> float:
    """(b − a) / |a| in percent; from 0, any change is ±inf."""
    if a == 0:
        return 0.0 if b == 0 else math.copysign(math.inf, b)
    return (b - a) / abs(a) * 100


@dataclass(slots=True, frozen=True)
class Delta:
    metric: str
    a: float
    b: float

    @property
    def change(self) -> float:
        return self.b - self.a

    @property
    def change_pct(self) -> float:
        return relative_change_pct(self.a, self.b)

    @property
    def improved(self) -> bool | None:
        """True when B is better than A, False when worse, None when equal."""
        if self.b == self.a:
            return None
        return (self.b > self.a) == (self.metric in HIGHER_IS_BETTER)

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.change,
                "delta_pct": None if math.isinf(self.change_pct) else self.change_pct}


def main_metrics(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The metrics of the delta table that both results have."""
    fields = []
    for latency in LATENCIES:
        shared = sorted(set(result_percentiles(a, latency)) & set(result_percentiles(b, latency)))
        fields += [f"mean_{latency}_ms", f"median_{latency}_ms"]
        fields += [f"p{int(p) if p == int(p) else p}_{latency}_ms" for p in shared if p != 50]  # p50 is the median
    fields += ["request_throughput", "output_throughput", "total_token_throughput", "request_goodput",
               "error_rate", "completed", "failed"]
    return [f for f in fields if metric_value(a, f) is not None and metric_value(b, f) is not None]


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Delta]:
    return [Delta(f, metric_value(a, f) or 0.0, metric_value(b, f) or 0.0) for f in main_metrics(a, b)]


@dataclass(slots=True, frozen=True)
class Rule:
    """`METRIC OP THRESHOLD`, tested on B against A (see `parse_rule`)."""

    text: str
    metric: str  # the result field
    op: str
    threshold: float
    mode: str  # "relative" (% change), "delta" (B − A) or "value" (B itself)

    def observed(self, a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")) -> float:
        values = []
        for result, name in ((a, names[0]), (b, names[1])):
            value = metric_value(result, self.metric)
            if value is None:
                state = "null" if self.metric in result else "missing"
                raise CompareError(f"rule {self.text!r}: {self.metric} is {state} in {name}")
            values.append(value)
        if self.mode == "relative":
            return relative_change_pct(values[0], values[1])
        return values[1] - values[0] if self.mode == "delta" else values[1]

    def trips(self, a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")) -> bool:
        return _OPERATORS[self.op](self.observed(a, b, names), self.threshold)


def parse_rule(text: str, known: Sequence[Mapping[str, Any]] = ()) -> Rule:
    """`ttft_p99 > +10%` (relative change), `p99_ttft_ms > +5ms` (B − A; a sign makes it a change),
    `failed > 0` or `p99_ttft_ms > 500` (B's own value, no sign). `ms`/`s` suit `_ms` metrics only.
    With `known` results, a metric none of them has is refused."""
    match = _RULE.match(text)
    if not match:
        raise CompareError(f"rule {text!r} is not METRIC OP [+|-]NUMBER[%|ms|s] (e.g. 'ttft_p99 > +10%')")
    name, op, sign, number, unit = match.groups()
    metric = resolve_metric(name)
    if known and metric not in DERIVED and all(metric_value(r, metric) is None and metric not in r for r in known):
        resolved = f" ({metric} is in neither result)" if metric != name else ""
        raise CompareError(f"rule {text!r}: unknown metric {name!r}{resolved}; use a result field such as "
                           "p99_ttft_ms, request_throughput, failed, error_rate, or a short name like ttft_p99")
    threshold = float(number) * (-1 if sign == "-" else 1)
    if unit in ("ms", "s"):
        if not metric.endswith("_ms"):
            raise CompareError(f"rule {text!r}: {unit} only suits a latency in ms, not {metric}")
        threshold *= 1000 if unit == "s" else 1
    mode = "relative" if unit == "%" else "delta" if sign else "value"
    return Rule(text.strip(), metric, op, threshold, mode)
