"""The embedded default end to end: SmolLM2 (GGUF, CPU) answers and MiniLM embeds, through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sluice.api import create_app
from sluice.config import StoreConfig, default_config
from tests.support.gateway import RunningGateway
from tests.support.servers import serve_app


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    db: Path = tmp_path_factory.mktemp("default") / "sluice.db"
    config = default_config().model_copy(update={"store": StoreConfig(url=f"sqlite:///{db}")})
    app = create_app(config)
    with serve_app(app) as url:
        yield RunningGateway(url, app)


def test_default_config_lists_local_models(default_gateway: RunningGateway) -> None:
    ids = {model.id for model in default_gateway.client().models.list()}
    assert ids >= {"smollm2-135m-instruct", "all-minilm-l6-v2"}


def test_smollm2_answers_with_real_token_counts(default_gateway: RunningGateway) -> None:
    client = default_gateway.client(timeout=120)
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct", temperature=0, max_tokens=24,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    text = answer.choices[0].message.content or ""
    assert text.strip()
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 5 and 0 < answer.usage.completion_tokens <= 24
    chunks = list(client.chat.completions.create(
        model="smollm2-135m-instruct", temperature=0, max_tokens=24, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What is the capital of France?"}]))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # temperature 0: the same answer streamed and not
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1  # token by token, not one blob
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_minilm_embeddings_rank_paraphrases_closer(default_gateway: RunningGateway) -> None:
    result = default_gateway.client().embeddings.create(
        model="all-minilm-l6-v2",
        input=["How do I reset my password?", "I forgot my password, how can I change it?",
               "The train to Lyon leaves at noon."])
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (3, 384)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert result.usage.prompt_tokens > 10


def test_default_config_serves_simulated_gpu_models_and_says_so(default_gateway: RunningGateway) -> None:
    models = {model.id: model for model in default_gateway.client().models.list()}
    assert "SIMULATED" in (models["llama-3.1-8b-sim-h100"].description or "")  # type: ignore[attr-defined]
    chunks = list(default_gateway.client().chat.completions.create(
        model="llama-3.1-8b-sim-h100", max_tokens=12, seed=3, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say something."}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    again = default_gateway.client().chat.completions.create(
        model="llama-3.1-8b-sim-h100", max_tokens=12, seed=3, messages=[{"role": "user", "content": "Say something."}])
    assert again.choices[0].message.content == text  # deterministic per seed


def test_a_simulated_deployment_that_cannot_start_is_a_config_error() -> None:
    from sluice.config import parse_config
    from sluice.errors import ConfigError

    config = parse_config({"backends": {"s": {"type": "sim", "model": "llama-3.1-405b", "gpu": "rtx-3090"}},
                           "models": {"m": {"targets": [{"backend": "s"}]}}})
    with pytest.raises(ConfigError, match=r"backends\.s: .*would not start"):  # at start-up, before any app exists
        create_app(config)
