"""From a public model to a pool of replicas: deployments, rollout sides, endpoints, and state that survives
a new deployment version."""

from __future__ import annotations

import pytest

from sluice.backends import Backend
from sluice.errors import BackendNotReady, InvalidRequest
from sluice.rollout import TargetRef
from tests.routing.helpers import anthropic, embedder, openai, router_for


def test_real_adapters_satisfy_the_backend_protocol() -> None:
    assert isinstance(openai("vllm-a"), Backend)
    assert isinstance(anthropic("claude"), Backend)
    assert isinstance(embedder("minilm"), Backend)


def test_a_pool_holds_the_sides_replicas_with_upstream_names_and_weights() -> None:
    router = router_for({"chat": {"targets": [
        {"backend": "vllm-a", "model": "meta-llama/Llama-3.1-8B-Instruct", "weight": 90},
        {"backend": "vllm-b", "weight": 10}]}}, openai("vllm-a"), openai("vllm-b"))
    deployment = router.deployments.get("chat")
    assert deployment is not None

    pool = router.pool(deployment, "stable", "chat")

    assert pool.model == "chat"
    assert [(t.name, t.upstream_model, t.weight, t.public_model) for t in pool.targets] == [
        ("vllm-a", "meta-llama/Llama-3.1-8B-Instruct", 90.0, "chat"), ("vllm-b", "chat", 10.0, "chat")]
    assert not any(t.fallback for t in pool.targets)


def test_the_candidate_side_gets_the_candidate_replicas() -> None:
    router = router_for({"chat": {"targets": [{"backend": "old"}],
                                  "rollout": {"candidate": [{"backend": "new", "model": "v2"}],
                                              "candidate_weight": 10}}}, openai("old"), openai("new"))
    deployment = router.deployments.get("chat")
    assert deployment is not None

    assert [t.name for t in router.pool(deployment, "stable", "chat").targets] == ["old"]
    assert [(t.name, t.upstream_model) for t in router.pool(deployment, "candidate", "chat").targets] == [
        ("new", "v2")]


def test_an_endpoint_the_backend_cannot_serve_is_a_400_naming_what_it_serves() -> None:
    router = router_for({"claude-haiku": {"targets": [{"backend": "claude"}]}}, anthropic("claude"))
    deployment = router.deployments.get("claude-haiku")
    assert deployment is not None

    with pytest.raises(InvalidRequest) as caught:
        router.pool(deployment, "stable", "embeddings")

    error = caught.value
    assert error.status_code == 400
    assert (error.param, error.code) == ("model", "unsupported_endpoint")
    assert error.message == "The model `claude-haiku` does not support /v1/embeddings (it serves: chat)."


def test_a_pool_serves_only_the_endpoints_every_replica_serves() -> None:
    router = router_for({"mixed": {"targets": [{"backend": "vllm-a"}, {"backend": "claude"}]}},
                        openai("vllm-a"), anthropic("claude"))
    deployment = router.deployments.get("mixed")
    assert deployment is not None

    assert router.pool(deployment, "stable", "chat").endpoints == frozenset({"chat"})
    assert router.endpoints(deployment) == frozenset({"chat"})
    with pytest.raises(InvalidRequest, match=r"does not support /v1/completions \(it serves: chat\)"):
        router.pool(deployment, "stable", "completions")


def test_replicas_sharing_no_endpoint_serve_nothing() -> None:
    router = router_for({"odd": {"targets": [{"backend": "claude"}, {"backend": "minilm"}]}}, anthropic("claude"),
                        embedder("minilm"))
    deployment = router.deployments.get("odd")
    assert deployment is not None

    with pytest.raises(InvalidRequest, match=r"it serves: nothing"):
        router.pool(deployment, "stable", "chat")


def test_the_pool_is_built_once_per_deployment_version() -> None:
    router = router_for({"chat": {"targets": [{"backend": "a"}]}}, openai("a"))
    deployment = router.deployments.get("chat")
    assert deployment is not None

    assert router.pool(deployment, "stable", "chat") is router.pool(deployment, "stable", "chat")


def test_a_new_deployment_version_gets_new_weights_but_keeps_each_replicas_state() -> None:
    router = router_for({"chat": {"targets": [{"backend": "a", "weight": 50}, {"backend": "b", "weight": 50}]}},
                        openai("a"), openai("b"), openai("c"))
    first = router.deployments.get("chat")
    assert first is not None
    old = router.pool(first, "stable", "chat")
    old.targets[0].state.outstanding = 3
    old.targets[0].state.observe_latency(0.5)

    router.deployments.put(first.evolve(stable=(TargetRef("a", "chat", 80), TargetRef("c", "chat", 20))))
    second = router.deployments.get("chat")
    assert second is not None and second is not first
    new = router.pool(second, "stable", "chat")

    assert new is not old
    assert [(t.name, t.weight) for t in new.targets] == [("a", 80.0), ("c", 20.0)]
    assert new.targets[0].state is old.targets[0].state
    assert (new.targets[0].state.outstanding, new.targets[0].state.ewma_s) == (3, 0.5)
    assert new.targets[1].state.outstanding == 0


def test_the_same_backend_with_another_upstream_model_is_another_replica() -> None:
    router = router_for({"small": {"targets": [{"backend": "a", "model": "8b"}]},
                         "big": {"targets": [{"backend": "a", "model": "70b"}]}}, openai("a"))
    small, big = router.deployments.get("small"), router.deployments.get("big")
    assert small is not None and big is not None

    small_state = router.pool(small, "stable", "chat").targets[0].state
    big_state = router.pool(big, "stable", "chat").targets[0].state

    assert small_state is not big_state
    assert (small_state.key, big_state.key) == (("a", "8b"), ("a", "70b"))


def test_a_deployment_naming_a_backend_this_gateway_lacks_is_a_503_not_a_crash() -> None:
    router = router_for({"chat": {"targets": [{"backend": "a"}]}}, openai("a"))
    deployment = router.deployments.get("chat")
    assert deployment is not None
    ghost = deployment.evolve(stable=(TargetRef("ghost", "chat"),))

    with pytest.raises(BackendNotReady) as caught:
        router.pool(ghost, "stable", "chat")

    assert caught.value.status_code == 503
    assert caught.value.code == "backend_not_configured"


def test_a_fallback_pool_marks_its_targets_and_shares_their_state() -> None:
    router = router_for({"m": {"targets": [{"backend": "a"}], "fallbacks": ["spare"]},
                         "spare": {"targets": [{"backend": "b"}]}}, openai("a"), openai("b"))
    spare = router.deployments.get("spare")
    assert spare is not None

    fallback = router.fallback_pool("spare", "chat", None, {})

    assert fallback is not None
    (target,) = fallback.targets
    assert target.fallback and target.public_model == "spare"
    assert target.state is router.pool(spare, "stable", "chat").targets[0].state
    assert router.fallback_pool("spare", "embeddings", None, {}) is not None  # openai serves embeddings
    assert router.fallback_pool("nobody", "chat", None, {}) is None
