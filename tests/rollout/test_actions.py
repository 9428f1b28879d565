"""Operator actions on deployments, the spec round trip, and stored deployments over the config's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sluice.config import parse_config
from sluice.errors import InvalidRequest
from sluice.rollout import DeploymentRegistry, TargetRef, actions
from sluice.rollout.spec import SpecError, from_spec, to_spec

CONFIG = parse_config({
    "backends": {"blue": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"},
                 "green": {"type": "openai", "base_url": "http://127.0.0.1:2/v1"}},
    "models": {"chat": {"targets": [{"backend": "blue", "model": "v1"}],
                        "rollout": {"strategy": "blue_green", "candidate": [{"backend": "green", "model": "v2"}]}},
               "plain": {"targets": [{"backend": "blue"}]}},
})
GREEN = (TargetRef("green", "v2"),)


def chat():  # type: ignore[no-untyped-def]
    return DeploymentRegistry.from_config(CONFIG).get("chat")


def test_switch_flips_blue_green_and_back() -> None:
    live = actions.switch(chat())
    assert live.candidate_weight == 100 and live.side_for("u", {}) == "candidate"
    assert actions.switch(live).candidate_weight == 0
    assert actions.switch(live, "candidate").candidate_weight == 100


def test_blue_green_takes_no_partial_weight_and_canaries_do_not_switch() -> None:
    with pytest.raises(InvalidRequest, match="blue-green") as error:
        actions.set_weight(chat(), 30)
    assert error.value.param == "weight"
    canary = actions.set_candidate(chat(), GREEN, strategy="canary", weight=10)
    assert (canary.strategy, canary.candidate_weight) == ("canary", 10)
    with pytest.raises(InvalidRequest, match="switch flips blue-green"):
        actions.switch(canary)


@pytest.mark.parametrize("weight", [-1, 100.5, "50", True])
def test_weight_outside_0_to_100_is_refused(weight: object) -> None:
    canary = actions.set_candidate(chat(), GREEN, strategy="canary")
    with pytest.raises(InvalidRequest) as error:
        actions.set_weight(canary, weight)  # type: ignore[arg-type]
    assert error.value.code == "invalid_weight"


def test_promote_makes_the_candidate_stable_and_rollback_keeps_it_at_zero() -> None:
    promoted = actions.promote(actions.switch(chat()))
    assert promoted.stable == GREEN and promoted.candidate == () and promoted.candidate_weight == 0
    rolled_back = actions.rollback(actions.switch(chat()))
    assert rolled_back.candidate == GREEN and rolled_back.candidate_weight == 0


def test_actions_that_need_a_candidate_say_so() -> None:
    plain = DeploymentRegistry.from_config(CONFIG).get("plain")
    assert plain is not None
    for act in (actions.promote, actions.rollback, actions.switch):
        with pytest.raises(InvalidRequest, match="has no candidate"):
            act(plain)
    started = actions.start_canary(plain, GREEN, 5)
    assert (started.strategy, started.candidate, started.candidate_weight) == ("canary", GREEN, 5)


def test_spec_round_trips_every_field() -> None:
    deployment = actions.set_candidate(chat(), GREEN, strategy="canary", weight=12.5)
    spec = to_spec(deployment)
    assert spec["candidate"] == [{"backend": "green", "model": "v2", "weight": 100.0}]
    assert "model" not in spec and "version" not in spec
    assert from_spec("chat", 7, spec) == replace(deployment, version=7)


@pytest.mark.parametrize(("spec", "message"), [
    ({"stable": []}, "stable: a deployment needs"),
    ({"stable": [{"backend": "blue", "model": "x"}], "candidate_weight": 101}, "candidate_weight"),
    ({"stable": [{"model": "x"}]}, "stable.0"),
    ({"stable": [{"backend": "blue", "model": "x", "colour": 1}]}, "unknown key 'colour'"),
    ({"stable": [{"backend": "blue", "model": "x"}], "sticky_key": "usr"}, "sticky_key: 'usr'"),
    ({"stable": [{"backend": "blue", "model": "x"}], "sticky_key": "header:"}, "sticky_key"),
    ({"stable": [{"backend": "blue", "model": "x"}], "sticky_key": "header: x-user"}, "sticky_key"),
    ({"stable": [{"backend": "blue", "model": "x"}], "shadow_sample_rate": 2}, "shadow_sample_rate"),
    ({"stable": [{"backend": "blue", "model": "x"}], "shadow_max_concurrency": 0}, "shadow_max_concurrency"),
])
def test_bad_specs_name_the_key(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        from_spec("chat", 1, spec)


def test_a_stored_deployment_wins_unless_it_names_an_unknown_backend() -> None:
    registry = DeploymentRegistry.from_config(CONFIG)
    stored = from_spec("chat", 3, {**to_spec(chat()), "candidate_weight": 100})
    assert registry.apply_stored(stored) is None
    assert registry.get("chat") is stored and registry.from_store("chat")
    gone = from_spec("chat", 4, {**to_spec(chat()), "candidate": [{"backend": "purple", "model": "v3"}]})
    problem = registry.apply_stored(gone)
    assert problem == "stored version 4 ignored: unknown backend candidate.0.backend: 'purple' (not in this " \
                      "gateway's config)"
    assert registry.get("chat") is stored and registry.problems["chat"] == problem
    unknown_model = from_spec("other", 1, to_spec(chat()))
    assert "not in this gateway's config" in (registry.apply_stored(unknown_model) or "")
    assert registry.get("other") is None


def test_set_shadow_starts_changes_and_stops_mirroring_and_keeps_the_split() -> None:
    canary = actions.set_candidate(chat(), GREEN, strategy="canary", weight=30)
    shadowed = actions.set_shadow(canary, GREEN, sample_rate=0.25, max_concurrency=8)
    assert (shadowed.shadow, shadowed.shadow_sample_rate, shadowed.shadow_max_concurrency) == (GREEN, 0.25, 8)
    assert (shadowed.candidate, shadowed.candidate_weight) == (canary.candidate, 30)
    kept = actions.set_shadow(shadowed, GREEN)  # rate and bound unchanged when not given
    assert (kept.shadow_sample_rate, kept.shadow_max_concurrency) == (0.25, 8)
    assert actions.set_shadow(shadowed, ()).shadow == ()
    for bad in ({"sample_rate": 1.5}, {"max_concurrency": 0}):
        with pytest.raises(InvalidRequest) as refused:
            actions.set_shadow(chat(), GREEN, **bad)  # type: ignore[arg-type]
        assert refused.value.param == next(iter(bad))
