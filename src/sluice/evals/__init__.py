"""Eval suites (docs/evals.md): cases read from YAML or JSONL and checked whole when loaded, and the
deterministic scorers (exact, contains, regex, json_schema, json_equal, numeric, refusal), and runs: a suite
sent to a model on a gateway, its results kept as JSONL and summarized. Gates, baselines, the judge and
embedding similarity are not built yet."""

from __future__ import annotations

from sluice.evals.errors import SuiteError
from sluice.evals.results import (
    CaseResult,
    PassRate,
    ResultsError,
    ResultsWriter,
    RunHeader,
    ScoreResult,
    Summary,
    load_results,
    summarize,
)
from sluice.evals.runner import GatewayUnreachable, check_gateway, run_suite
from sluice.evals.scorers import REFUSAL_PATTERNS, SCORERS, Score, Scorer, build_scorer, first_number, is_refusal
from sluice.evals.suite import Case, Message, Suite, load_suite

__all__ = [
    "REFUSAL_PATTERNS",
    "SCORERS",
    "Case",
    "CaseResult",
    "GatewayUnreachable",
    "Message",
    "PassRate",
    "ResultsError",
    "ResultsWriter",
    "RunHeader",
    "Score",
    "ScoreResult",
    "Scorer",
    "Suite",
    "SuiteError",
    "Summary",
    "build_scorer",
    "check_gateway",
    "first_number",
    "is_refusal",
    "load_results",
    "load_suite",
    "run_suite",
    "summarize",
]
