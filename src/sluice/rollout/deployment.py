"""A deployment as data: which targets serve a public model, and how traffic splits between versions.

`Deployment` is immutable; a change (set-weight, switch, promote, rollback) makes a new one with a higher
`version`. The request path reads the current one and asks it which side a request lands on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from sluice.config import ModelConfig, TargetConfig

Side = Literal["stable", "candidate"]
Strategy = Literal["canary", "blue_green"]
ROUTE_OVERRIDE_HEADER = "x-sluice-route"  # stable | candidate: pin a request to one side (testing)
_BUCKETS = 10_000  # weight resolution: 0.01 %


@dataclass(slots=True, frozen=True)
class TargetRef:
    """One replica: a backend and the model name to ask it for."""

    backend: str
    model: str
    weight: float = 100.0

    @classmethod
    def from_config(cls, target: TargetConfig, public_name: str) -> TargetRef:
        return cls(target.backend, target.model or public_name, target.weight)

    def label(self) -> str:
        return f"{self.backend}:{self.model}"


@dataclass(slots=True, frozen=True)
class Deployment:
    model: str  # the public name
    stable: tuple[TargetRef, ...]
    candidate: tuple[TargetRef, ...] = ()
    candidate_weight: float = 0.0  # percent of traffic on the candidate
    strategy: Strategy = "canary"
    sticky_key: str = "user"  # user | header:<name> | random
    shadow: tuple[TargetRef, ...] = ()
    shadow_sample_rate: float = 1.0
    shadow_max_concurrency: int = 4
    version: int = 0

    @classmethod
    def from_config(cls, name: str, model: ModelConfig) -> Deployment:
        rollout = model.rollout
        return cls(
            model=name,
            stable=tuple(TargetRef.from_config(t, name) for t in model.targets),
            candidate=tuple(TargetRef.from_config(t, name) for t in rollout.candidate),
            candidate_weight=rollout.candidate_weight if rollout.candidate else 0.0,
            strategy=rollout.strategy,
            sticky_key=rollout.sticky_key,
            shadow=tuple(TargetRef.from_config(t, name) for t in rollout.shadow),
            shadow_sample_rate=rollout.shadow_sample_rate,
            shadow_max_concurrency=rollout.shadow_max_concurrency,
        )

    def evolve(self, **changes: object) -> Deployment:
        """A copy with `changes` and the next version."""
        return replace(self, version=self.version + 1, **changes)  # type: ignore[arg-type]

    def side_for(self, user: str | None, headers: Mapping[str, str]) -> Side:
        """Which side serves this caller: the override header, else a sticky hash against the weight.

        A caller's bucket depends only on (model, key), so raising the weight from 10 % to 25 % keeps
        everyone who was on the candidate there and moves only new callers over.
        """
        if not self.candidate:
            return "stable"
        override = headers.get(ROUTE_OVERRIDE_HEADER)
        if override in ("stable", "candidate"):
            return override  # type: ignore[return-value]
        weight = self.candidate_weight
        if weight <= 0:
            return "stable"
        if weight >= 100:
            return "candidate"
        key = self.sticky_value(user, headers)
        bucket = random.randrange(_BUCKETS) if key is None else bucket_of(self.model, key)
        return "candidate" if bucket < weight * (_BUCKETS // 100) else "stable"

    def sticky_value(self, user: str | None, headers: Mapping[str, str]) -> str | None:
        if self.sticky_key == "user":
            return user
        if self.sticky_key.startswith("header:"):
            return headers.get(self.sticky_key[7:].lower())
        return None

    def targets_for(self, side: Side) -> tuple[TargetRef, ...]:
        return self.candidate if side == "candidate" and self.candidate else self.stable


def bucket_of(model: str, key: str) -> int:
    """A stable bucket in [0, 10000) for a caller of a model (blake2b, not Python's salted hash)."""
    digest = hashlib.blake2b(f"{model}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


__all__ = ["ROUTE_OVERRIDE_HEADER", "Deployment", "Side", "Strategy", "TargetRef", "bucket_of"]
