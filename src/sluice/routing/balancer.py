"""Load balancers: choose one replica among the usable ones (pure functions over the targets' state).

- `least_outstanding` (default): fewest attempts running per unit of weight; ties at random.
- `p2c_ewma`: power of two choices, two replicas drawn by weight, the lower EWMA latency × (outstanding + 1).
- `weighted`: at random in proportion to weight.
A zero-weight replica is chosen only when every candidate has zero weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from sluice.config import BalancerName
from sluice.routing.target import Target

Balancer = Callable[[Sequence[Target], random.Random], Target]


def least_outstanding(targets: Sequence[Target], rng: random.Random) -> Target:
    best: Target | None = None
    ties: list[Target] = []
    best_cost = float("inf")
    positive = any(t.weight > 0 for t in targets)
    for target in targets:
        weight = target.weight if positive else 1.0
        if weight <= 0:
            continue
        cost = (target.state.outstanding + 1) / weight
        if cost < best_cost:
            best_cost, best, ties = cost, target, []
        elif cost == best_cost:
            ties.append(target)
    assert best is not None
    return rng.choice([best, *ties]) if ties else best


def weighted(targets: Sequence[Target], rng: random.Random) -> Target:
    total = sum(t.weight for t in targets)
    if total <= 0:
        return rng.choice(targets)
    point = rng.random() * total
    for target in targets:
        point -= target.weight
        if point < 0:
            return target
    return next(t for t in reversed(targets) if t.weight > 0)


def p2c_ewma(targets: Sequence[Target], rng: random.Random) -> Target:
    first = weighted(targets, rng)
    rest = [t for t in targets if t is not first]
    if not rest or (first.weight > 0 and all(t.weight <= 0 for t in rest)):
        return first
    second = weighted(rest, rng)
    return first if _latency_cost(first) <= _latency_cost(second) else second


def _latency_cost(target: Target) -> float:
    # A replica with no sample yet costs nothing, so a new or recovered one is tried soon.
    state = target.state
    return (state.ewma_s or 0.0) * (state.outstanding + 1)


BALANCERS: dict[BalancerName, Balancer] = {
    "least_outstanding": least_outstanding,
    "p2c_ewma": p2c_ewma,
    "weighted": weighted,
}

__all__ = ["BALANCERS", "Balancer", "least_outstanding", "p2c_ewma", "weighted"]
