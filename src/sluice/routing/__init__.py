"""Routing: pick a replica per attempt (least-outstanding, P2C-EWMA, weighted), retry with backoff, fall back
to other models, break circuits to failing replicas, and check their health (docs/routing.md)."""

from sluice.routing.attempts import Attempt, call, open_attempt
from sluice.routing.breaker import BreakerState, CircuitBreaker, NoBreaker
from sluice.routing.difficulty_router import load_classifier
from sluice.routing.errors import NoHealthyTarget
from sluice.routing.health import HealthChecker, HealthStreak
from sluice.routing.metrics import RoutingMetrics
from sluice.routing.policy import RoutePolicy, backoff_s, counts_against_target, failure_kind
from sluice.routing.pool import Pool
from sluice.routing.router import Router
from sluice.routing.stage import CostRoutingStage, RouteStage
from sluice.routing.target import Target, TargetState

__all__ = [
    "Attempt",
    "BreakerState",
    "CircuitBreaker",
    "CostRoutingStage",
    "HealthChecker",
    "HealthStreak",
    "NoBreaker",
    "NoHealthyTarget",
    "Pool",
    "RoutePolicy",
    "RouteStage",
    "Router",
    "RoutingMetrics",
    "Target",
    "TargetState",
    "backoff_s",
    "call",
    "counts_against_target",
    "failure_kind",
    "load_classifier",
    "open_attempt",
]
