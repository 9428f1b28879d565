"""Routing policy: config defaults, per-model overrides, validation with key paths, failure kinds, backoff."""

from __future__ import annotations

import random

import pytest

from sluice.config import ModelConfig, RoutingConfig, parse_config
from sluice.errors import (
    BackendNotReady,
    ClientDisconnected,
    ConfigError,
    InvalidRequest,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from sluice.routing import NoHealthyTarget, RoutePolicy, backoff_s, counts_against_target, failure_kind

BACKENDS = {"a": {"type": "openai", "base_url": "http://a/v1"}}


def test_defaults_are_two_attempts_least_outstanding_breaker_on_health_checks_off() -> None:
    policy = RoutePolicy.build(RoutingConfig())

    assert policy.balancer == "least_outstanding"
    assert policy.retry.max_attempts == 2
    assert policy.retry_on == {"connection", "5xx", "timeout", "429"}
    assert policy.same_target_on == {"connection", "429"}
    assert policy.fallback_on == {"connection", "5xx", "timeout", "429"}
    assert policy.circuit_breaker.enabled and policy.circuit_breaker.consecutive_failures == 5
    assert policy.health_check.interval_s is None
    assert policy.fallbacks == ()


def test_a_model_overrides_single_keys_and_keeps_the_routing_defaults_for_the_rest() -> None:
    routing = RoutingConfig.model_validate({"balancer": "weighted",
                                            "retry": {"max_attempts": 4, "backoff_max_s": 1.0},
                                            "circuit_breaker": {"cooldown_s": 3}})
    model = ModelConfig.model_validate({"targets": [{"backend": "a"}], "retry": {"per_try_timeout_s": 2},
                                        "circuit_breaker": {"consecutive_failures": 2},
                                        "fallbacks": [], "fallback_on": ["5xx"]})

    policy = RoutePolicy.build(routing, model)

    assert policy.balancer == "weighted"
    assert (policy.retry.max_attempts, policy.retry.backoff_max_s, policy.retry.per_try_timeout_s) == (4, 1.0, 2)
    assert (policy.circuit_breaker.cooldown_s, policy.circuit_breaker.consecutive_failures) == (3, 2)
    assert policy.fallback_on == {"5xx"}


def test_same_target_kinds_outside_retry_on_are_not_retried() -> None:
    routing = RoutingConfig.model_validate({"retry": {"retry_on": ["5xx"], "same_target_on": ["5xx", "429"]}})

    assert RoutePolicy.build(routing).same_target_on == {"5xx"}


def test_fallbacks_must_name_configured_models() -> None:
    with pytest.raises(ConfigError, match=r"models\.chat\.fallbacks\.1: unknown model 'gpt-9' "
                                          r"\(configured: chat, spare\)"):
        parse_config({"backends": BACKENDS, "models": {
            "chat": {"targets": [{"backend": "a"}], "fallbacks": ["spare", "gpt-9"]},
            "spare": {"targets": [{"backend": "a"}]}}})


@pytest.mark.parametrize(("fallbacks", "message"), [
    (["chat"], r"models\.chat\.fallbacks\.0: a model cannot fall back to itself"),
    (["spare", "spare"], r"models\.chat\.fallbacks\.1: 'spare' is listed twice"),
])
def test_fallback_lists_are_checked(fallbacks: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"backends": BACKENDS, "models": {"chat": {"targets": [{"backend": "a"}], "fallbacks": fallbacks},
                                                       "spare": {"targets": [{"backend": "a"}]}}})


@pytest.mark.parametrize(("section", "message"), [
    ({"routing": {"balancer": "round_robin"}}, r"routing\.balancer: Input should be"),
    ({"routing": {"retry": {"retry_on": ["500"]}}}, r"routing\.retry\.retry_on\.0: Input should be"),
    ({"routing": {"retry": {"max_attempts": 0}}}, r"routing\.retry\.max_attempts: Input should be greater"),
    ({"routing": {"circuit_breaker": {"failure_rate": 1.5}}}, r"routing\.circuit_breaker\.failure_rate"),
    ({"routing": {"health_check": {"interval": 5}}}, r"routing\.health_check\.interval: unknown key"),
])
def test_bad_routing_settings_name_their_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"backends": BACKENDS, "models": {"chat": {"targets": [{"backend": "a"}]}}, **section})


def test_a_models_bad_retry_setting_names_the_model() -> None:
    with pytest.raises(ConfigError, match=r"models\.chat\.retry\.backoff_initial_s: Input should be greater"):
        parse_config({"backends": BACKENDS, "models": {"chat": {"targets": [{"backend": "a"}],
                                                                "retry": {"backoff_initial_s": -1}}}})


@pytest.mark.parametrize(("error", "kind"), [
    (UpstreamRateLimited("slow down", retry_after_s=1.0), "429"),
    (UpstreamTimeout("late"), "timeout"),
    (upstream_error_for_status(504, "gateway timeout"), "timeout"),
    (UpstreamRejected("too long", status_code=400), "4xx"),
    (upstream_error_for_status(503, "overloaded"), "5xx"),
    (upstream_error_for_status(500, "boom"), "5xx"),
    (UpstreamUnavailable("cannot connect to upstream http://a: refused"), "connection"),
    (UpstreamStreamBroken("upstream closed the stream before [DONE]"), "connection"),
    (BackendNotReady("failed to load"), "connection"),
    (NoHealthyTarget("chat"), "connection"),
    (InvalidRequest("bad"), None),
    (ClientDisconnected("gone"), None),
    (RuntimeError("bug"), None),
])
def test_failure_kinds(error: BaseException, kind: str | None) -> None:
    assert failure_kind(error) == kind


def test_only_upstream_side_failures_count_against_a_target() -> None:
    assert [counts_against_target(k) for k in ("connection", "5xx", "timeout")] == [True, True, True]
    assert counts_against_target("4xx") is False  # it answered properly; the request was wrong
    assert counts_against_target("429") is None  # throttling, not breakage
    assert counts_against_target(None) is None


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    retry = RoutingConfig.model_validate({"retry": {"backoff_initial_s": 0.1, "backoff_max_s": 0.5}}).retry
    rng = random.Random(0)

    for retry_index, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (10, 0.5)]:
        draws = [backoff_s(retry, retry_index, rng) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.9 * ceiling and min(draws) < 0.1 * ceiling  # spread over the whole range


def test_zero_backoff_retries_at_once() -> None:
    retry = RoutingConfig.model_validate({"retry": {"backoff_initial_s": 0}}).retry

    assert backoff_s(retry, 3, random.Random(0)) == 0.0
