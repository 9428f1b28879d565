"""An eval run as the registry keeps it: the summary as JSON, the case results with answers cut short (enough to
serve as a later gate's baseline and to show what flipped), and the case results read back from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.evals.results import CaseResult, PassRate, RunHeader, summarize

KEPT_ANSWER_CHARS = 500
KEPT_REASON_CHARS = 300


def run_record(header: RunHeader, results: Sequence[CaseResult], *, target: str,
               gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of `POST /admin/models/{model}/versions/{ref}/evals` for this run (and its gate, if any)."""
    return {"suite": header.suite, "suite_hash": header.suite_hash, "target": target, "repeats": header.repeats,
            "summary": summary_json(results), "gate_status": None if gate is None else gate["status"],
            "gate": gate, "cases": [_kept(result) for result in results]}


def summary_json(results: Sequence[CaseResult]) -> dict[str, Any]:
    summary = summarize(results)
    return {"accuracy": _rate(summary.overall),
            "by_scorer": {kind: _rate(rate) for kind, rate in summary.by_scorer.items()},
            "by_tag": {tag: _rate(rate) for tag, rate in summary.by_tag.items()},
            "errors": summary.errors, "latency_p50_s": summary.latency_p50_s,
            "latency_p95_s": summary.latency_p95_s, "prompt_tokens": summary.prompt_tokens,
            "completion_tokens": summary.completion_tokens, "cost_usd": summary.cost_usd}


def cases_from_record(cases: Sequence[dict[str, Any]]) -> list[CaseResult]:
    """The case results a stored run kept (answers and reasons cut short)."""
    return [CaseResult.from_json(case) for case in cases]


def _kept(result: CaseResult) -> dict[str, Any]:
    kept = result.to_json()
    if result.answer is not None:
        kept["answer"] = result.answer[:KEPT_ANSWER_CHARS]
    kept["scores"] = [{**score, "reason": score["reason"][:KEPT_REASON_CHARS]} for score in kept["scores"]]
    return kept


def _rate(rate: PassRate) -> dict[str, Any]:
    low, high = rate.interval
    return {"passed": rate.passed, "total": rate.total, "rate": rate.rate, "low": low, "high": high}


__all__ = ["KEPT_ANSWER_CHARS", "cases_from_record", "run_record", "summary_json"]
