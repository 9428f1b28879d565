"""Safety guards on prompts and answers (docs/safety.md): layers behind one interface, run by the chain's
`guards` stage in enforce or monitor mode. The report reads the store (SQLAlchemy), so its names load on first
use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.safety.build import build_guard, is_called
from sluice.safety.guards import (
    CalledGuard,
    Direction,
    Guard,
    GuardContext,
    GuardFailed,
    KeywordGuard,
    PIIGuard,
    RegexGuard,
    Verdict,
)
from sluice.safety.hooks import load_hook
from sluice.safety.llama_guard import LlamaGuard, ModelCaller
from sluice.safety.metrics import SafetyMetrics
from sluice.safety.normalize import normalise
from sluice.safety.payloads import CONTENT_FILTER
from sluice.safety.stage import GUARD_CALL, GUARDS_HEADER, ContentFiltered, GuardStage

if TYPE_CHECKING:
    from sluice.safety.evaluate import (
        SHIPPED,
        EvalResult,
        Example,
        evaluate_direct,
        evaluate_gateway,
        load_examples,
        parse_condition,
        shipped_sets,
        wilson,
    )
    from sluice.safety.report import SafetyReport, SafetyRow, safety_report

_ON_FIRST_USE = {"SafetyReport": "sluice.safety.report", "SafetyRow": "sluice.safety.report",
                 "safety_report": "sluice.safety.report",
                 **{name: "sluice.safety.evaluate" for name in ("SHIPPED", "EvalResult", "Example", "evaluate_direct",
                                                                "evaluate_gateway", "load_examples",
                                                                "parse_condition", "shipped_sets", "wilson")}}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "CONTENT_FILTER",
    "GUARDS_HEADER",
    "GUARD_CALL",
    "SHIPPED",
    "CalledGuard",
    "ContentFiltered",
    "Direction",
    "EvalResult",
    "Example",
    "Guard",
    "GuardContext",
    "GuardFailed",
    "GuardStage",
    "KeywordGuard",
    "LlamaGuard",
    "ModelCaller",
    "PIIGuard",
    "RegexGuard",
    "SafetyMetrics",
    "SafetyReport",
    "SafetyRow",
    "Verdict",
    "build_guard",
    "evaluate_direct",
    "evaluate_gateway",
    "is_called",
    "load_examples",
    "load_hook",
    "normalise",
    "parse_condition",
    "safety_report",
    "shipped_sets",
    "wilson",
]
