"""The embedding-similarity scorer: the cosine between the answer's and the reference's embeddings, by an
embedding model the gateway serves (`/v1/embeddings`), clipped to [0, 1]; passes at `threshold`.

The reference is the scorer's `value`, else the case's `expected` (a non-string as its JSON). Each reference is
embedded once a run (the client caches it); each answer once. A failed embedding call is a scorer error.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from sluice.evals.score import ModelScorerSpec, Score, as_text, scorer_error
from sluice.evals.scorer_client import MAX_ERROR_CHARS, ScorerCallError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sluice.evals.scorer_client import ScorerClient
    from sluice.evals.suite import Case

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"  # what the embedded default config serves (sluice serve, no config)


class Similarity(ModelScorerSpec):
    type: Literal["similarity"] = "similarity"
    model: str = Field(DEFAULT_EMBEDDING_MODEL, min_length=1)
    threshold: float = Field(0.8, ge=0, le=1)
    value: str | None = None  # the reference; else the case's `expected`
    needs_expected: ClassVar[str] = "value"

    async def ascore(self, answer: str, case: Case, client: ScorerClient | None) -> Score:
        if client is None:
            raise ValueError("the similarity scorer calls an embedding model through a gateway: give the run a "
                             "judge_url")
        reference = as_text(self._target(case))
        try:
            wanted, got = await asyncio.gather(client.embedding(self.model, reference, cache=True),
                                               client.embedding(self.model, answer))
        except ScorerCallError as error:
            message = f"embedding error: {error}"[:MAX_ERROR_CHARS]
            return scorer_error(message, str(error)[:MAX_ERROR_CHARS])
        if len(wanted) != len(got):
            message = f"embeddings of different sizes ({len(got)} and {len(wanted)})"
            return scorer_error(f"embedding error: {message}", message)
        value = max(0.0, min(1.0, cosine(got, wanted)))
        passed = value >= self.threshold
        return Score(value, passed, f"cosine {value:.3f} {'≥' if passed else '<'} {self.threshold:g}")


def cosine(first: Sequence[float], second: Sequence[float]) -> float:
    """The cosine of the angle between two vectors; 0 when either is all zeros."""
    dot = math.fsum(a * b for a, b in zip(first, second, strict=True))
    norms = math.sqrt(math.fsum(a * a for a in first)) * math.sqrt(math.fsum(b * b for b in second))
    return dot / norms if norms else 0.0


__all__ = ["DEFAULT_EMBEDDING_MODEL", "Similarity", "cosine"]
