"""The toxicity layer: alt-profanity-check, an offline classifier (TF-IDF word features into calibrated linear
SVMs) that ships its model in the wheel; ~0.06 ms per 1 KB on one core (benchmarks/guard_latency.py)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from sluice.config import ToxicityGuardConfig
from sluice.safety.guards import Direction, GuardBase, Verdict


def _classifier() -> Callable[[list[str]], Any]:
    """The package's `predict_prob`, or the same probabilities computed directly from its model when it is the
    one it ships (TF-IDF into a calibrated ensemble of linear SVMs): scikit-learn spends ~3 ms per call in input
    checks and per-estimator overhead whatever the text's length; the direct form takes ~20 µs for a sentence and
    ~0.2 ms for 1 KB, and equals it to within 1e-12 on every shipped text (tests/safety/test_layers.py)."""
    with warnings.catch_warnings():  # its pickles name the scikit-learn they were made with; they load on later ones
        warnings.simplefilter("ignore")
        import profanity_check
        from profanity_check import profanity_check as package
    direct = _direct(package.vectorizer, package.model)
    return direct if direct is not None else profanity_check.predict_prob


def _direct(vectorizer: Any, model: Any) -> Callable[[list[str]], Any] | None:
    """P(profane) = mean over the ensemble of sigmoid(-(a * (x . w + c) + b)), x the text's L2-normalised TF-IDF
    vector, computed from the words the vectoriser's own analyser finds; None for any other model or vectoriser
    (scikit-learn's `transform` alone spends ~0.3 ms per call checking its input)."""
    import numpy as np

    try:
        members = model.calibrated_classifiers_
        weights = np.stack([member.estimator.coef_[0] for member in members], axis=1)  # features x members
        intercepts = np.array([member.estimator.intercept_[0] for member in members])
        slopes = np.array([member.calibrators[0].a_ for member in members])
        offsets = np.array([member.calibrators[0].b_ for member in members])
        analyse, vocabulary, idf = vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_
        expected = (model.method == "sigmoid" and len(model.classes_) == 2 and weights.shape[0] == len(vocabulary)
                    and vectorizer.norm == "l2" and vectorizer.use_idf and not vectorizer.sublinear_tf
                    and not vectorizer.binary)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if not expected:
        return None

    def predict(texts: list[str]) -> Any:
        scores = []
        for text in texts:
            counts = Counter(index for term in analyse(text) if (index := vocabulary.get(term)) is not None)
            decision = intercepts
            if counts:
                rows = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
                vector = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * idf[rows]
                decision = vector @ weights[rows] / np.sqrt(vector @ vector) + intercepts
            scores.append(float((1.0 / (1.0 + np.exp(slopes * decision + offsets))).mean()))
        return np.array(scores)

    return predict


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
