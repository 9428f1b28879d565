"""Eval suites (docs/evals.md): cases read from YAML or JSONL and checked whole when loaded, and the
deterministic scorers (exact, contains, regex, json_schema, json_equal, numeric, refusal). Runs, gates, the
judge and embedding similarity are not built yet."""

from __future__ import annotations

from sluice.evals.errors import SuiteError
from sluice.evals.scorers import REFUSAL_PATTERNS, SCORERS, Score, Scorer, build_scorer, first_number, is_refusal
from sluice.evals.suite import Case, Message, Suite, load_suite

__all__ = [
    "REFUSAL_PATTERNS",
    "SCORERS",
    "Case",
    "Message",
    "Score",
    "Scorer",
    "Suite",
    "SuiteError",
    "build_scorer",
    "first_number",
    "is_refusal",
    "load_suite",
]
