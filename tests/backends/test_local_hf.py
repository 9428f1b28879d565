"""TransformersBackend against a tiny randomly initialised Llama built offline in the test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.backends.local_hf import TransformersBackend
from sluice.backends.types import BackendCall, ChatCompletionRequest, Chunk, CompletionRequest
from sluice.config import TransformersBackendConfig
from sluice.errors import InvalidRequest
from tests.support.tiny_llama import write_tiny_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

CONTEXT_TOKENS = 8192
MESSAGES = [{"role": "user", "content": "tell me a story about the sea"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer with a chat template and a 2-layer Llama with random weights (no EOS)."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), hidden_size=32, context_tokens=CONTEXT_TOKENS)


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Iterator[TransformersBackend]:
    backend = TransformersBackend("tiny", TransformersBackendConfig(type="transformers", path=str(model_dir)))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[Any, Any]:
    """The same model and tokenizer loaded plainly, to check the backend against `generate`."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    return model, tokenizer


def chat_call(**params: Any) -> BackendCall:
    request = ChatCompletionRequest(model="tiny", messages=MESSAGES, **params)
    return BackendCall("chat", request, "tiny", "req-chat")


def completion_call(prompt: str, **params: Any) -> BackendCall:
    return BackendCall("completions", CompletionRequest(model="tiny", prompt=prompt, **params), "tiny", "req-cmpl")


async def drain(backend: TransformersBackend, call: BackendCall) -> list[Chunk]:
    return [chunk async for chunk in backend.stream(call)]


def output_text(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


def greedy_ids(reference: tuple[Any, Any], prompt_ids: list[int], count: int) -> list[int]:
    model, _ = reference
    with torch.inference_mode():
        output = model.generate(torch.tensor([prompt_ids]), max_new_tokens=count, do_sample=False)
    return [int(token) for token in output[0, len(prompt_ids):]]


def generation_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "sluice-generate-tiny"]


async def test_chat_streams_greedy_tokens_one_chunk_each_and_stops_at_max_tokens(
        backend: TransformersBackend, reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    chunks = await drain(backend, chat_call(max_tokens=12, temperature=0))

    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    expected_ids = greedy_ids(reference, prompt_ids, 12)
    assert chunks[0].payload["choices"][0]["delta"]["role"] == "assistant"
    assert output_text(chunks) == tokenizer.decode(expected_ids, skip_special_tokens=True)
    text_chunks = [chunk for chunk in chunks if chunk.has_output]
    # Word-level vocabulary: every token that is not special arrives as its own chunk.
    assert len(text_chunks) == sum(token not in tokenizer.all_special_ids for token in expected_ids) > 1
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["length"]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].payload["choices"] == []
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(prompt_ids), 12)


async def test_completion_counts_prompt_with_the_model_tokenizer(
        backend: TransformersBackend, reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    result = await backend.complete(completion_call("the cat sat on", max_tokens=5, temperature=0))

    prompt_ids = tokenizer("the cat sat on")["input_ids"]
    assert result.payload["object"] == "text_completion"
    assert result.text == tokenizer.decode(greedy_ids(reference, prompt_ids, 5), skip_special_tokens=True)
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (len(prompt_ids), 5)
    assert result.finish_reason == "length"


async def test_same_seed_samples_the_same_text(backend: TransformersBackend) -> None:
    first = await backend.complete(chat_call(max_tokens=16, temperature=1.0, seed=7))
    again = await backend.complete(chat_call(max_tokens=16, temperature=1.0, seed=7))
    other = await backend.complete(chat_call(max_tokens=16, temperature=1.0, seed=8))
    assert first.text == again.text
    assert first.text != other.text


async def test_stop_sequence_cuts_the_text_and_finishes_with_stop(backend: TransformersBackend) -> None:
    full = (await backend.complete(chat_call(max_tokens=12, temperature=0))).text
    stop = full.split()[3]

    stopped = await backend.complete(chat_call(max_tokens=12, temperature=0, stop=[stop]))
    assert stopped.text == full[:full.find(stop)]
    assert stopped.finish_reason == "stop"


async def test_closing_the_stream_early_stops_the_worker_thread(backend: TransformersBackend) -> None:
    stream = backend.stream(chat_call(max_tokens=CONTEXT_TOKENS - 100, temperature=1.0))
    received = 0
    async for chunk in stream:
        received += chunk.has_output
        if received == 2:
            break
    assert generation_threads()  # thousands of tokens to go: it would run for many seconds
    await stream.aclose()  # type: ignore[attr-defined]

    deadline = time.monotonic() + 1.0
    while generation_threads() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not generation_threads()
    after = await backend.complete(chat_call(max_tokens=3, temperature=0))  # the model lock was released
    assert after.usage is not None and after.usage.completion_tokens == 3


async def test_concurrent_requests_take_turns_on_the_model(backend: TransformersBackend) -> None:
    results = await asyncio.gather(*(backend.complete(chat_call(max_tokens=8, temperature=0)) for _ in range(3)))
    assert len({result.text for result in results}) == 1
    assert all(result.usage and result.usage.completion_tokens == 8 for result in results)


async def test_unservable_requests_are_invalid(backend: TransformersBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.complete(chat_call(n=2))
    with pytest.raises(InvalidRequest) as too_long:
        await backend.complete(completion_call("hello " * (CONTEXT_TOKENS + 10), max_tokens=5))
    assert too_long.value.code == "context_length_exceeded"
