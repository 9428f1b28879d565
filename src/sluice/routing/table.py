"""Public model names -> weighted targets on backends; picks one target per request."""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

from sluice.backends import Backend, Endpoint
from sluice.config import ModelConfig
from sluice.errors import InvalidRequest, ModelNotFound


@dataclass(slots=True, frozen=True)
class Target:
    backend: Backend
    upstream_model: str
    weight: float

    @property
    def name(self) -> str:
        return self.backend.name


class Route:
    """The targets behind one public model name, chosen at random in proportion to weight."""

    __slots__ = ("_cumulative", "_total", "endpoints", "model", "targets")

    def __init__(self, model: str, targets: tuple[Target, ...]) -> None:
        self.model = model
        self.targets = targets
        self.endpoints: frozenset[Endpoint] = frozenset.intersection(*(t.backend.endpoints for t in targets))
        self._cumulative = list(accumulate(t.weight for t in targets))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random = random._inst) -> Target:  # type: ignore[attr-defined]
        if len(self.targets) == 1 or self._total <= 0:
            return self.targets[0]
        point = rng.random() * self._total
        for target, bound in zip(self.targets, self._cumulative, strict=True):
            if point < bound:
                return target
        return self.targets[-1]


class RouteTable:
    def __init__(self, models: dict[str, ModelConfig], backends: dict[str, Backend]) -> None:
        self.routes = {
            name: Route(name, tuple(Target(backends[t.backend], t.model or name, t.weight)
                                    for t in model.targets))
            for name, model in models.items()
        }

    def resolve(self, model: str, endpoint: Endpoint) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(model)
        if endpoint not in route.endpoints:
            served = ", ".join(sorted(route.endpoints)) or "nothing"
            raise InvalidRequest(f"The model `{model}` does not support /v1/{endpoint} (it serves: {served}).",
                                 param="model", code="unsupported_endpoint")
        return route
