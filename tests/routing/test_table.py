"""The route table: public model names to weighted targets, and which endpoints a route can serve."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sluice.backends import Backend
from sluice.backends.anthropic import AnthropicBackend
from sluice.backends.embedding import SentenceTransformerBackend
from sluice.backends.openai_compat import OpenAICompatBackend
from sluice.config import AnthropicBackendConfig, EmbeddingBackendConfig, ModelConfig, OpenAIBackendConfig
from sluice.errors import InvalidRequest, ModelNotFound
from sluice.routing.table import RouteTable


def openai(name: str) -> OpenAICompatBackend:
    return OpenAICompatBackend(name, OpenAIBackendConfig(type="openai", base_url=f"http://{name}:8000/v1"))


def anthropic(name: str) -> AnthropicBackend:
    return AnthropicBackend(name, AnthropicBackendConfig(type="anthropic"))


def embedder(name: str) -> SentenceTransformerBackend:
    return SentenceTransformerBackend(name, EmbeddingBackendConfig(type="sentence_transformers",
                                                                   path="builtin:all-minilm-l6-v2"))


def model(*targets: dict[str, object]) -> ModelConfig:
    return ModelConfig.model_validate({"targets": list(targets)})


def table(models: dict[str, ModelConfig], *backends: Backend) -> RouteTable:
    return RouteTable(models, {backend.name: backend for backend in backends})


def test_real_adapters_satisfy_the_backend_protocol() -> None:
    assert isinstance(openai("vllm-a"), Backend)
    assert isinstance(anthropic("claude"), Backend)
    assert isinstance(embedder("minilm"), Backend)


def test_an_unknown_model_is_a_404_naming_the_model_param() -> None:
    routes = table({"chat": model({"backend": "vllm-a"})}, openai("vllm-a"))

    with pytest.raises(ModelNotFound) as caught:
        routes.resolve("gpt-5", "chat")

    error = caught.value
    assert (error.status_code, error.param, error.code) == (404, "model", "model_not_found")
    assert "gpt-5" in error.message


def test_a_known_model_resolves_to_its_route_with_upstream_names_and_weights() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "model": "meta-llama/Llama-3.1-8B-Instruct", "weight": 90},
                                  {"backend": "vllm-b", "weight": 10})},
                   openai("vllm-a"), openai("vllm-b"))

    route = routes.resolve("chat", "chat")

    assert route.model == "chat"
    assert [(t.name, t.upstream_model, t.weight) for t in route.targets] == [
        ("vllm-a", "meta-llama/Llama-3.1-8B-Instruct", 90.0), ("vllm-b", "chat", 10.0)]


def test_an_endpoint_the_backend_cannot_serve_is_a_400_naming_what_it_serves() -> None:
    routes = table({"claude-haiku": model({"backend": "claude"})}, anthropic("claude"))

    with pytest.raises(InvalidRequest) as caught:
        routes.resolve("claude-haiku", "embeddings")

    error = caught.value
    assert error.status_code == 400
    assert (error.param, error.code) == ("model", "unsupported_endpoint")
    assert error.message == "The model `claude-haiku` does not support /v1/embeddings (it serves: chat)."


def test_a_route_serves_only_the_endpoints_every_target_serves() -> None:
    routes = table({"mixed": model({"backend": "vllm-a"}, {"backend": "claude"})}, openai("vllm-a"),
                   anthropic("claude"))

    assert routes.resolve("mixed", "chat").endpoints == frozenset({"chat"})
    with pytest.raises(InvalidRequest, match=r"does not support /v1/completions \(it serves: chat\)"):
        routes.resolve("mixed", "completions")


def test_a_route_whose_targets_share_no_endpoint_says_it_serves_nothing() -> None:
    routes = table({"odd": model({"backend": "claude"}, {"backend": "minilm"})}, anthropic("claude"),
                   embedder("minilm"))

    with pytest.raises(InvalidRequest, match=r"it serves: nothing"):
        routes.resolve("odd", "chat")


def test_served_endpoints_are_listed_in_sorted_order() -> None:
    routes = table({"emb": model({"backend": "minilm"})}, embedder("minilm"))
    assert routes.resolve("emb", "embeddings").endpoints == frozenset({"embeddings"})

    with pytest.raises(InvalidRequest, match=r"it serves: embeddings\)"):
        routes.resolve("emb", "chat")


def test_weighted_pick_follows_the_weights() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "weight": 90}, {"backend": "vllm-b", "weight": 10})},
                   openai("vllm-a"), openai("vllm-b"))
    route = routes.resolve("chat", "chat")
    rng = random.Random(20240601)

    picks = Counter(route.pick(rng).name for _ in range(10_000))

    assert set(picks) == {"vllm-a", "vllm-b"}
    assert picks["vllm-a"] / 10_000 == pytest.approx(0.90, abs=0.02)
    assert picks["vllm-b"] / 10_000 == pytest.approx(0.10, abs=0.02)


def test_weights_are_relative_not_percentages() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "weight": 3}, {"backend": "vllm-b", "weight": 1})},
                   openai("vllm-a"), openai("vllm-b"))
    route = routes.resolve("chat", "chat")
    rng = random.Random(7)

    picks = Counter(route.pick(rng).name for _ in range(10_000))

    assert picks["vllm-a"] / 10_000 == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("zero_first", [True, False])
def test_a_zero_weight_target_is_never_picked_when_another_has_weight(zero_first: bool) -> None:
    targets = [{"backend": "off", "weight": 0}, {"backend": "on", "weight": 1}]
    if not zero_first:
        targets.reverse()
    routes = table({"chat": model(*targets)}, openai("off"), openai("on"))
    route = routes.resolve("chat", "chat")
    rng = random.Random(1)

    assert {route.pick(rng).name for _ in range(10_000)} == {"on"}


def test_a_single_target_is_always_picked() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "weight": 5})}, openai("vllm-a"))
    route = routes.resolve("chat", "chat")
    rng = random.Random(3)

    assert {route.pick(rng).name for _ in range(1_000)} == {"vllm-a"}


def test_a_single_target_with_zero_weight_is_still_picked() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "weight": 0})}, openai("vllm-a"))

    assert routes.resolve("chat", "chat").pick(random.Random(3)).name == "vllm-a"


def test_pick_is_reproducible_with_the_same_seed() -> None:
    routes = table({"chat": model({"backend": "vllm-a", "weight": 50}, {"backend": "vllm-b", "weight": 50})},
                   openai("vllm-a"), openai("vllm-b"))
    route = routes.resolve("chat", "chat")

    def draws(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [route.pick(rng).name for _ in range(100)]

    assert draws(42) == draws(42)
    assert set(draws(42)) == {"vllm-a", "vllm-b"}
