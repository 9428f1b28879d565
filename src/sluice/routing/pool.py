"""A pool: the replicas behind one side of one deployment version, and the choice among them."""

from __future__ import annotations

import random
from collections.abc import Collection

from sluice.backends import Endpoint
from sluice.routing.balancer import BALANCERS
from sluice.routing.breaker import BreakerState
from sluice.routing.policy import RoutePolicy
from sluice.routing.target import Target, TargetState


class Pool:
    """Built once per deployment version and side (the router caches it); `pick` runs per attempt."""

    __slots__ = ("_as_fallback", "_balance", "endpoints", "model", "policy", "targets")

    def __init__(self, model: str, targets: tuple[Target, ...], policy: RoutePolicy) -> None:
        self.model = model
        self.targets = targets
        self.policy = policy
        self.endpoints: frozenset[Endpoint] = frozenset.intersection(*(t.backend.endpoints for t in targets))
        self._balance = BALANCERS[policy.balancer]
        self._as_fallback: Pool | None = None

    def pick(self, now: float, rng: random.Random, avoid: Collection[TargetState] = ()) -> Target | None:
        """The balancer's choice among usable replicas not in `avoid`, preferring ones not throttled by a 429.

        None when no replica outside `avoid` may take a request (breaker open, unhealthy).
        """
        targets = self.targets
        if len(targets) == 1:  # the common case, without building lists
            only = targets[0]
            return only if only.state not in avoid and only.state.usable(now) else None
        usable = []
        throttled = 0
        for target in targets:
            state = target.state
            if not state.healthy or (avoid and state in avoid):
                continue
            if state.breaker.state is not BreakerState.CLOSED and not state.breaker.available(now):
                continue
            if state.throttled_until > now:
                throttled += 1
            usable.append(target)
        if throttled and len(usable) > throttled:
            usable = [t for t in usable if t.state.throttled_until <= now]
        if not usable:
            return None
        return usable[0] if len(usable) == 1 else self._balance(usable, rng)

    def as_fallback(self) -> Pool:
        """The same replicas (same state), marked as reached through another model's fallback."""
        if self._as_fallback is None:
            marked = tuple(Target(t.backend, t.upstream_model, t.weight, t.state, t.public_model, fallback=True)
                           for t in self.targets)
            self._as_fallback = Pool(self.model, marked, self.policy)
        return self._as_fallback


__all__ = ["Pool"]
