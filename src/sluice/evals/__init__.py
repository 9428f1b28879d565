"""Eval suites (docs/evals.md): cases read from YAML or JSONL and checked whole when loaded; the deterministic
scorers (exact, contains, regex, json_schema, json_equal, numeric, refusal) and the model-backed ones (judge,
similarity, unsafe); and runs: a suite sent to a model on a gateway or a raw OpenAI-compatible API, its results
kept as JSONL and summarized; gates and comparisons decided by confidence intervals; a run as the registry
keeps it; HTML reports (loaded on first use: they import matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.evals.compare import Comparison, MetricChange, compare_runs
from sluice.evals.errors import SuiteError
from sluice.evals.gate import (
    Check,
    Flip,
    GateError,
    GateReport,
    Threshold,
    evaluate_gate,
    flipped_cases,
    parse_threshold,
)
from sluice.evals.judge import JUDGE_PROMPT_HASH, Judge, JudgeError, judge_prompt_hash, parse_verdict
from sluice.evals.metrics import Estimate, MetricError, estimate, higher_is_better, metric_names, regression
from sluice.evals.recording import cases_from_record, run_record, summary_json
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
from sluice.evals.runner import BackendUnreachable, GatewayUnreachable, check_backend, check_gateway, run_suite
from sluice.evals.score import ModelScorer, ModelScorerSpec, Score, Scorer
from sluice.evals.scorer_client import ScorerCallError, ScorerClient
from sluice.evals.scorers import REFUSAL_PATTERNS, SCORERS, build_scorer, first_number, is_refusal
from sluice.evals.similarity import DEFAULT_EMBEDDING_MODEL, Similarity, cosine
from sluice.evals.suite import Case, Message, Suite, load_suite
from sluice.evals.unsafe import Unsafe
from sluice.lazy import on_first_use

if TYPE_CHECKING:
    from sluice.evals.report import render_html_report, write_html_report

__getattr__ = on_first_use(__name__, {"render_html_report": "sluice.evals.report",
                                      "write_html_report": "sluice.evals.report"})

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "JUDGE_PROMPT_HASH",
    "REFUSAL_PATTERNS",
    "SCORERS",
    "BackendUnreachable",
    "Case",
    "CaseResult",
    "Check",
    "Comparison",
    "Estimate",
    "Flip",
    "GateError",
    "GateReport",
    "GatewayUnreachable",
    "Judge",
    "JudgeError",
    "Message",
    "MetricChange",
    "MetricError",
    "ModelScorer",
    "ModelScorerSpec",
    "PassRate",
    "ResultsError",
    "ResultsWriter",
    "RunHeader",
    "Score",
    "ScoreResult",
    "Scorer",
    "ScorerCallError",
    "ScorerClient",
    "Similarity",
    "Suite",
    "SuiteError",
    "Summary",
    "Threshold",
    "Unsafe",
    "build_scorer",
    "cases_from_record",
    "check_backend",
    "check_gateway",
    "compare_runs",
    "cosine",
    "estimate",
    "evaluate_gate",
    "first_number",
    "flipped_cases",
    "higher_is_better",
    "is_refusal",
    "judge_prompt_hash",
    "load_results",
    "load_suite",
    "metric_names",
    "parse_threshold",
    "parse_verdict",
    "regression",
    "render_html_report",
    "run_record",
    "run_suite",
    "summarize",
    "summary_json",
    "write_html_report",
]
