"""presidio-analyzer's pattern recognizers, offline: no spaCy model (a no-op NLP engine), and without the two
recognizers that look up the public-suffix list on the network (e-mail and URL; the built-in detectors find
e-mail addresses, and a URL is not personal data)."""

from __future__ import annotations

import logging
from typing import Any

# What the built-in detectors (telemetry/redact.py) do not cover, and presidio finds cheaply (~0.6 ms per 1 KB;
# all seventeen take ~10 ms, mostly dates and phone numbers, which the built-in detectors handle).
DEFAULT_ENTITIES = ("US_SSN", "US_ITIN", "US_PASSPORT", "US_BANK_NUMBER", "US_DRIVER_LICENSE", "UK_NHS", "CRYPTO",
                    "MEDICAL_LICENSE", "MAC_ADDRESS")
_NETWORKED = ("EmailRecognizer", "UrlRecognizer")


class PresidioDetector:
    """Findings (start, end, entity) at or above `min_score`; `mask` replaces each with `[ENTITY]`."""

    def __init__(self, entities: list[str], min_score: float) -> None:
        # presidio and its recognizers take ~5 s to import: only a config that asks for them pays it
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        for name in _NETWORKED:
            registry.remove_recognizer(name)
        self.engine: Any = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        supported = set(self.engine.get_supported_entities("en"))
        unknown = [entity for entity in entities if entity not in supported]
        if unknown:
            raise ValueError(f"unknown presidio entities {', '.join(unknown)}; offline it knows: "
                             f"{', '.join(sorted(supported))}")
        self.entities = list(entities) or list(DEFAULT_ENTITIES)
        self.min_score = min_score

    def find(self, text: str) -> list[tuple[int, int, str]]:
        if not text:
            return []
        results = self.engine.analyze(text, language="en", entities=self.entities, score_threshold=self.min_score)
        return sorted((result.start, result.end, result.entity_type) for result in results)

    def mask(self, text: str) -> str:
        cut = 0
        parts = []
        for start, end, entity in self.find(text):
            if start < cut:
                continue  # overlapping findings: the first one masks the span
            parts.append(text[cut:start])
            parts.append(f"[{entity}]")
            cut = end
        parts.append(text[cut:])
        return "".join(parts)


__all__ = ["DEFAULT_ENTITIES", "PresidioDetector"]
