"""Routing, rollout, shadow and per-model sections (routing/, rollout/)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sluice.config._base import _Strict
from sluice.config.cache import CacheConfig
from sluice.config.structured import StructuredConfig


class TargetConfig(_Strict):
    backend: str
    model: str | None = None  # upstream model name; defaults to the public name
    weight: float = Field(100.0, ge=0)


# What went wrong on an upstream attempt, as retry_on / same_target_on / fallback_on name it (docs/routing.md).
FailureKind = Literal["connection", "5xx", "timeout", "429", "4xx"]
BalancerName = Literal["least_outstanding", "p2c_ewma", "weighted"]
_TRANSIENT: list[FailureKind] = ["connection", "5xx", "timeout", "429"]


class RetryConfig(_Strict):
    """Retries on a model's own replicas; only before the first byte of an answer reached the client."""

    max_attempts: int = Field(2, ge=1)  # tries in all, the first included (1: no retry)
    retry_on: list[FailureKind] = _TRANSIENT
    same_target_on: list[FailureKind] = ["connection", "429"]  # may retry the replica that failed (else another)
    backoff_initial_s: float = Field(0.1, ge=0)  # full jitter: uniform(0, min(max, initial * 2**retry))
    backoff_max_s: float = Field(2.0, ge=0)
    retry_after_max_s: float = Field(5.0, ge=0)  # a 429's retry-after is waited up to this; longer: no retry there
    per_try_timeout_s: float | None = Field(None, gt=0)  # to the first output chunk (streams) / whole answer
    total_timeout_s: float | None = Field(None, gt=0)  # same, from arrival, across retries and fallbacks
    # A stream cut after output: ask again, check the new stream repeats what the client has, relay the rest
    # (docs/routing.md). deterministic: temperature 0 or a seed; always: any (a diverging answer is not spliced).
    resume_streams: Literal["off", "deterministic", "always"] = "deterministic"


class CircuitBreakerConfig(_Strict):
    """Per target: stop sending to a replica that keeps failing; probe it again after a cooldown."""

    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)  # ... or this share of failures over the window
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(20, ge=1)  # attempts in the window before the rate counts
    cooldown_s: float = Field(15.0, gt=0)
    half_open_max_requests: int = Field(1, ge=1)  # probes at once after the cooldown


class HealthCheckConfig(_Strict):
    """Active checks (`backend.health()`); off unless `interval_s` is set."""

    interval_s: float | None = Field(None, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    unhealthy_after: int = Field(3, ge=1)
    healthy_after: int = Field(2, ge=1)


class RoutingConfig(_Strict):
    """Routing defaults for every model; `models.<name>` may override any key (nested keys one by one)."""

    balancer: BalancerName = "least_outstanding"
    retry: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    health_check: HealthCheckConfig = HealthCheckConfig()
    fallback_on: list[FailureKind] = _TRANSIENT


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP field name (RFC 9110 token)


def is_sticky_key(value: object) -> bool:
    """`user`, `random` or `header:<name>`: what keeps a caller on one side of a rollout."""
    if value in ("user", "random"):
        return True
    return isinstance(value, str) and value.startswith("header:") and _HEADER_NAME.fullmatch(value[7:]) is not None


class RolloutConfig(_Strict):
    """The initial deployment of a model; changed at run time with `sluice deploy` / the admin API."""

    strategy: Literal["canary", "blue_green"] = "canary"
    candidate: list[TargetConfig] = []  # replicas of the candidate version
    candidate_weight: float = Field(0.0, ge=0, le=100)  # % of traffic to the candidate (blue-green: 0 or 100)
    sticky_key: str = "user"  # user | header:<name> | random: what keeps a caller on one side
    shadow: list[TargetConfig] = []  # mirrored in the background, answers compared, never returned
    shadow_sample_rate: float = Field(1.0, ge=0, le=1)
    shadow_max_concurrency: int = Field(4, gt=0)

    @field_validator("sticky_key")
    @classmethod
    def _sticky_key_known(cls, value: str) -> str:
        if not is_sticky_key(value):
            raise ValueError(f"{value!r} is not `user`, `random` or `header:<name>` (an HTTP header name)")
        return value


class ShadowConfig(_Strict):
    """Shadow mode (rollout/shadow.py): the deadline of a mirrored call and the batched writer of its pairs."""

    timeout_s: float = Field(30.0, gt=0)  # a shadow call still running after this is recorded as a timeout
    queue_size: int = Field(1000, gt=0)  # pairs waiting to be written; beyond it new pairs are dropped (counted)
    batch_size: int = Field(100, gt=0)
    flush_interval_s: float = Field(1.0, gt=0)


class CanaryThresholds(_Strict):
    """When a canary fails (docs/rollouts.md): a check fails only when significant AND past its margin."""

    alpha: float = Field(0.05, gt=0, lt=1)  # significance level of every one-sided test
    max_error_rate_increase: float = Field(0.01, ge=0, le=1)  # absolute: candidate − stable error rate
    max_ttft_p99_increase: float = Field(0.25, ge=0)  # relative: 0.25 lets the candidate's P99 be 25 % higher
    max_tpot_p99_increase: float = Field(0.25, ge=0)
    max_e2e_p99_increase: float = Field(0.25, ge=0)
    max_cost_increase: float = Field(0.10, ge=0)  # relative, mean cost per request (when both sides are priced)


class CanaryConfig(_Strict):
    """Defaults of a progressive canary; `sluice deploy start-canary` / the admin API may override each key."""

    steps: list[float] = Field([5.0, 25.0, 50.0, 100.0], min_length=1)  # candidate weight % per step
    interval_s: float = Field(300.0, gt=0)  # each step's analysis window
    min_requests: int = Field(50, ge=1)  # per side and window; fewer: inconclusive
    max_extensions: int = Field(3, ge=0)  # inconclusive windows a step may add before on_exhausted
    on_exhausted: Literal["rollback", "advance", "hold"] = "rollback"
    log_grace_s: float = Field(1.0, ge=0)  # wait after a window ends for every replica's log writer to flush
    thresholds: CanaryThresholds = CanaryThresholds()
    webhooks: list[str] = []  # URLs that get a JSON POST on each canary event

    @model_validator(mode="after")
    def _steps_increase(self) -> CanaryConfig:
        for index, step in enumerate(self.steps):
            if not 0 < step <= 100:
                raise ValueError(f"steps.{index}: a step is a weight in (0, 100], not {step}")
            if index and step <= self.steps[index - 1]:
                raise ValueError(f"steps.{index}: steps must increase ({self.steps[index - 1]} -> {step})")
        return self


class RolloutControlConfig(_Strict):
    """The rollout control plane (rollout/): how replicas pick up changes, and canary defaults."""

    poll_interval_s: float = Field(1.0, gt=0)  # how often a replica checks the store for deployment changes
    lease_s: float = Field(10.0, gt=0)  # the canary driver's lease; another replica takes over after it expires
    canary: CanaryConfig = CanaryConfig()


class DifficultyRouterConfig(_Strict):
    """`models.<name>.router`: cost-based routing (routing/difficulty_router.py); no targets of its own."""

    easy: str  # public model for prompts scored below `threshold` (the cheap one)
    hard: str  # public model for the rest (the strong one)
    classifier: str = "rules"  # rules | <module>:<attr> — a callable (turns) -> P(hard) in [0, 1]
    threshold: float = Field(0.5, ge=0, le=1)


class ModelConfig(_Strict):
    targets: list[TargetConfig] = []  # replicas of the stable version, load-balanced (none only with `router`)
    router: DifficultyRouterConfig | None = None  # cost-based routing to two other models instead of targets
    description: str | None = None
    rollout: RolloutConfig = RolloutConfig()
    # Routing policy (routing/); unset keys take `routing.*`.
    balancer: BalancerName | None = None
    retry: RetryConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    health_check: HealthCheckConfig | None = None
    fallbacks: list[str] = []  # other public models, tried in order when this one fails (fallback_on)
    fallback_on: list[FailureKind] | None = None
    cache: CacheConfig | None = None  # response caching; unset keys take the top-level `cache`
    guards: list[str] = []  # names from `safety.guards`, run in this order (cheap ones first), docs/safety.md
    structured: StructuredConfig | None = None  # answers to response_format; unset keys take the top-level `structured`


__all__ = [
    "BalancerName",
    "CanaryConfig",
    "CanaryThresholds",
    "CircuitBreakerConfig",
    "DifficultyRouterConfig",
    "FailureKind",
    "HealthCheckConfig",
    "ModelConfig",
    "RetryConfig",
    "RolloutConfig",
    "RolloutControlConfig",
    "RoutingConfig",
    "ShadowConfig",
    "TargetConfig",
    "is_sticky_key",
]
