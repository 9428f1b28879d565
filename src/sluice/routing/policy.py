"""A model's routing policy (defaults merged with its overrides) and the pure rules it applies:
which failure kind an error is, and how long to back off before the next try."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from sluice.config import (
    BalancerName,
    CircuitBreakerConfig,
    FailureKind,
    HealthCheckConfig,
    ModelConfig,
    RetryConfig,
    RoutingConfig,
)
from sluice.errors import (
    BackendNotReady,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)

_M = TypeVar("_M", bound=BaseModel)
# errors.upstream_error_for_status words every upstream 5xx this way; other UpstreamErrors never reached one.
_STATUS_PREFIX = "upstream returned "


@dataclass(slots=True, frozen=True)
class RoutePolicy:
    """How one public model routes: balancer, retries, breaker, health checks, fallbacks."""

    balancer: BalancerName
    retry: RetryConfig
    circuit_breaker: CircuitBreakerConfig
    health_check: HealthCheckConfig
    fallbacks: tuple[str, ...]
    fallback_on: frozenset[FailureKind]
    retry_on: frozenset[FailureKind]
    same_target_on: frozenset[FailureKind]

    @classmethod
    def build(cls, defaults: RoutingConfig, model: ModelConfig | None = None) -> RoutePolicy:
        """`routing.*` with the model's own keys on top (nested sections merge key by key)."""
        balancer, fallback_on = defaults.balancer, defaults.fallback_on
        retry, breaker, health = defaults.retry, defaults.circuit_breaker, defaults.health_check
        fallbacks: tuple[str, ...] = ()
        if model is not None:
            balancer = model.balancer or balancer
            fallback_on = model.fallback_on if model.fallback_on is not None else fallback_on
            retry = _overlay(retry, model.retry)
            breaker = _overlay(breaker, model.circuit_breaker)
            health = _overlay(health, model.health_check)
            fallbacks = tuple(model.fallbacks)
        return cls(balancer=balancer, retry=retry, circuit_breaker=breaker, health_check=health,
                   fallbacks=fallbacks, fallback_on=frozenset(fallback_on), retry_on=frozenset(retry.retry_on),
                   same_target_on=frozenset(retry.same_target_on) & frozenset(retry.retry_on))


def _overlay(base: _M, override: _M | None) -> _M:
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


def failure_kind(error: BaseException) -> FailureKind | None:
    """The kind of an attempt's failure, or None when the upstream is not to blame (client gone, bad input, bug)."""
    if isinstance(error, UpstreamRateLimited):
        return "429"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamRejected):
        return "4xx"
    if isinstance(error, UpstreamError):
        return "5xx" if error.message.startswith(_STATUS_PREFIX) else "connection"
    if isinstance(error, BackendNotReady):
        return "connection"  # a local model that failed to load: another replica may serve
    return None


def counts_against_target(kind: FailureKind | None) -> bool | None:
    """For breakers: True a failure, False a success (the upstream answered properly), None no verdict.

    An upstream 4xx is the request's fault, so the replica is fine; a 429 is handled by throttling, not the
    breaker; errors that are nobody upstream's fault (client disconnects, bad input) say nothing.
    """
    if kind is None or kind == "429":
        return None
    return kind != "4xx"


def backoff_s(retry: RetryConfig, retry_index: int, rng: random.Random) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(max, initial * 2**retry_index)]."""
    ceiling = min(retry.backoff_max_s, retry.backoff_initial_s * (2 ** retry_index))
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0


__all__ = ["RoutePolicy", "backoff_s", "counts_against_target", "failure_kind"]
