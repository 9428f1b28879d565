"""The toxicity layer: alt-profanity-check, an offline linear classifier over character n-grams that ships its
model in the wheel (scikit-learn; ~3 ms per 1 KB on one core, benchmarks/guard_latency.py)."""

from __future__ import annotations

import warnings
from typing import Any

from sluice.config import ToxicityGuardConfig
from sluice.safety.guards import Direction, GuardBase, Verdict


def _classifier() -> Any:
    with warnings.catch_warnings():  # its pickles name the scikit-learn they were made with; they load on later ones
        warnings.simplefilter("ignore")
        import profanity_check
    return profanity_check.predict_prob


class ToxicityGuard(GuardBase):
    """Finds a text whose probability of being abusive or profane reaches `threshold`; the verdict carries it."""

    layer = "toxicity"

    def __init__(self, name: str, config: ToxicityGuardConfig) -> None:
        super().__init__(name, config)
        self.threshold = config.threshold
        self.every_chars = config.every_chars
        self._predict = _classifier()

    def score(self, text: str) -> float:
        return float(self._predict([text])[0]) if text.strip() else 0.0

    def check(self, text: str, direction: Direction) -> Verdict | None:
        score = self.score(text)
        if score < self.threshold:
            return None
        return self._verdict(direction, f"p={score:.2f}", score=score)


__all__ = ["ToxicityGuard"]
