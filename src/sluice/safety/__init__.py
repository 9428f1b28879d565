"""Safety guards on prompts and answers (docs/safety.md): layers behind one interface, run by the chain's
`guards` stage in enforce or monitor mode."""

from sluice.safety.guards import Direction, Guard, KeywordGuard, RegexGuard, Verdict, build_guard
from sluice.safety.metrics import SafetyMetrics
from sluice.safety.normalize import normalise
from sluice.safety.stage import CONTENT_FILTER, GUARDS_HEADER, ContentFiltered, GuardStage

__all__ = ["CONTENT_FILTER", "GUARDS_HEADER", "ContentFiltered", "Direction", "Guard", "GuardStage", "KeywordGuard",
           "RegexGuard", "SafetyMetrics", "Verdict", "build_guard", "normalise"]
