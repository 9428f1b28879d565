"""A PEFT LoRA adapter served by the transformers backend (`adapter:`): a tiny random Llama and adapters made in
the test, checked against PEFT itself; broken adapters fail their backend with the reason, and only it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sluice.backends import ServedAdapter, build_backend
from sluice.backends.local_hf import TransformersBackend
from sluice.backends.types import BackendCall, CompletionRequest
from sluice.backends.worker import WorkerBackend
from sluice.config import TransformersBackendConfig
from sluice.errors import BackendNotReady
from sluice.lora_files import adapter_sha256
from tests.support.gateway import run_gateway
from tests.support.lora import make_peft_adapter
from tests.support.polling import wait_for
from tests.support.tiny_llama import write_tiny_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytest.importorskip("tokenizers")

PROMPT = "tell me a story about the sea"
TOKENS = 16


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def base_dir(models: Path) -> Path:
    """The base the adapters are made for: hidden size 64."""
    return write_tiny_llama(models / "tiny-llama", hidden_size=64)


@pytest.fixture(scope="module")
def adapter_dir(base_dir: Path, models: Path) -> Path:
    return make_peft_adapter(base_dir, models / "lora-support")


@pytest.fixture(scope="module")
def reference(base_dir: Path, adapter_dir: Path) -> str:
    """The greedy answer of the base with the adapter, loaded and run by PEFT itself (unmerged)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(base_dir)
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    model = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    with torch.inference_mode():
        output = model.generate(input_ids=torch.tensor([prompt_ids]), max_new_tokens=TOKENS, do_sample=False)
    return str(tokenizer.decode(output[0, len(prompt_ids):], skip_special_tokens=True))


def transformers_config(path: Path, **keys: Any) -> TransformersBackendConfig:
    return TransformersBackendConfig(type="transformers", path=str(path), **keys)


@pytest.fixture(scope="module")
def base_answer(base_dir: Path) -> str:
    return asyncio.run(answer(TransformersBackend("base", transformers_config(base_dir))))


async def answer(backend: Any) -> str:
    """Greedy completion of PROMPT by `backend`, started here and closed after."""
    await backend.start()
    try:
        request = CompletionRequest(model="m", prompt=PROMPT, max_tokens=TOKENS, temperature=0)
        return (await backend.complete(BackendCall("completions", request, "m", "req-lora"))).text
    finally:
        await backend.close()


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "unmerged"])
async def test_the_adapter_answers_as_peft_does_and_unlike_the_base(
        base_dir: Path, adapter_dir: Path, reference: str, base_answer: str, merge: bool) -> None:
    backend = TransformersBackend("tuned", transformers_config(base_dir, adapter=str(adapter_dir),
                                                               adapter_merge=merge))
    text = await answer(backend)
    assert text == reference
    assert text != base_answer


async def test_the_backend_reports_the_adapter_it_serves_by_content_hash(base_dir: Path, adapter_dir: Path) -> None:
    backend = TransformersBackend("tuned", transformers_config(base_dir, adapter=str(adapter_dir)))
    assert backend.adapter is None  # not loaded yet
    await backend.start()
    try:
        assert backend.adapter == ServedAdapter(path=str(adapter_dir.resolve()), sha256=adapter_sha256(adapter_dir),
                                                format="peft", merged=True)
    finally:
        await backend.close()


@pytest.mark.slow
async def test_the_adapter_is_served_from_the_worker_process(base_dir: Path, adapter_dir: Path,
                                                             reference: str) -> None:
    backend = build_backend("tuned", transformers_config(base_dir, adapter=str(adapter_dir)))
    assert isinstance(backend, WorkerBackend)
    assert await answer(backend) == reference
    assert backend.adapter is not None and backend.adapter.sha256 == adapter_sha256(adapter_dir)


@pytest.fixture(scope="module")
def broken(models: Path, base_dir: Path, adapter_dir: Path) -> dict[str, Path]:
    """Adapters that must not load on `base_dir`, by what is wrong with them."""
    not_peft = models / "not-peft"
    not_peft.mkdir()
    (not_peft / "notes.txt").write_text("a folder, but no adapter_config.json")
    no_weights = models / "no-weights"
    shutil.copytree(adapter_dir, no_weights)
    (no_weights / "adapter_model.safetensors").unlink()
    narrow_base = write_tiny_llama(models / "tiny-llama-narrow", hidden_size=32)
    # The same folder name as the base: the name check passes, the shapes do not.
    narrow_same_name = write_tiny_llama(models / "elsewhere" / "tiny-llama", hidden_size=32)
    deeper_same_name = write_tiny_llama(models / "deeper" / "tiny-llama", hidden_size=64, layers=3)
    other_modules = make_peft_adapter(base_dir, models / "lora-other-modules")
    settings = json.loads((other_modules / "adapter_config.json").read_text())
    settings["target_modules"] = ["c_attn"]  # GPT-2's attention: not a module of a Llama
    (other_modules / "adapter_config.json").write_text(json.dumps(settings))
    return {"missing": models / "no-such-adapter", "not-peft": not_peft, "no-weights": no_weights,
            "other-base": make_peft_adapter(narrow_base, models / "lora-narrow"),
            "wrong-shapes": make_peft_adapter(narrow_same_name, models / "lora-narrow-same-name"),
            "other-depth": make_peft_adapter(deeper_same_name, models / "lora-deeper"),  # layer 2: not in the base
            "other-modules": other_modules}


@pytest.mark.parametrize(("case", "why"), [
    ("missing", "not a folder"),
    ("not-peft", "not a PEFT adapter folder (no adapter_config.json)"),
    ("no-weights", "no adapter weights"),
    ("other-base", "was trained on"),
    ("wrong-shapes", "does not fit the model"),
    ("other-modules", "Target modules {'c_attn'} not found"),
    ("other-depth", "found unexpected adapter keys: ['base_model.model.model.layers.2."),
])
async def test_a_broken_adapter_fails_the_load_with_its_reason(
        base_dir: Path, broken: dict[str, Path], case: str, why: str) -> None:
    backend = TransformersBackend("tuned", transformers_config(base_dir, adapter=str(broken[case])))
    with pytest.raises(BackendNotReady, match="adapter") as caught:
        await backend.start()
    assert why in caught.value.message, caught.value.message
    if case == "other-base":  # says what to do about it
        assert "adapter_base_check: false" in caught.value.message
    if case == "wrong-shapes":
        assert "size mismatch" in caught.value.message


async def test_the_base_check_can_be_turned_off_and_the_shapes_still_refuse_a_foreign_adapter(
        base_dir: Path, broken: dict[str, Path]) -> None:
    backend = TransformersBackend("tuned", transformers_config(base_dir, adapter=str(broken["other-base"]),
                                                               adapter_base_check=False))
    with pytest.raises(BackendNotReady, match=r"does not fit the model.*size mismatch"):
        await backend.start()


@pytest.fixture
def gateway_config(tmp_path: Path, base_dir: Path, adapter_dir: Path, broken: dict[str, Path]) -> dict[str, Any]:
    no_cache = {"exact": {"enabled": False}}
    return {
        "store": {"url": f"sqlite:///{tmp_path / 'log.db'}", "log_bodies": "none", "flush_interval_s": 0.05},
        "backends": {
            "base": {"type": "transformers", "path": str(base_dir), "isolation": "thread"},
            "tuned": {"type": "transformers", "path": str(base_dir), "adapter": str(adapter_dir)},
            "broken": {"type": "transformers", "path": str(base_dir), "adapter": str(broken["other-base"])},
        },
        "models": {name: {"targets": [{"backend": name}], "cache": no_cache} for name in ("base", "tuned", "broken")},
    }


@pytest.mark.slow
def test_the_gateway_serves_the_adapter_and_names_it_while_a_broken_one_fails_alone(
        gateway_config: dict[str, Any], adapter_dir: Path, reference: str, base_answer: str) -> None:
    with run_gateway(gateway_config) as gw:
        def settled() -> dict[str, Any] | None:
            body = httpx.get(gw.url + "/health/ready").json()
            return body if "starting" not in body["backends"].values() else None

        health = wait_for(settled, timeout_s=120, what="every backend started or failed")
        assert health["backends"] == {"base": "ready", "tuned": "ready", "broken": "failed"}
        assert "was trained on" in health["backend_errors"]["broken"]

        client = gw.client()
        tuned = client.completions.with_raw_response.create(model="tuned", prompt=PROMPT, max_tokens=TOKENS,
                                                            temperature=0)
        assert tuned.parse().choices[0].text == reference
        assert tuned.headers["x-sluice-target"] == "tuned"
        base = client.completions.create(model="base", prompt=PROMPT, max_tokens=TOKENS, temperature=0)
        assert base.choices[0].text == base_answer
        with pytest.raises(openai.APIStatusError) as failed:
            client.completions.create(model="broken", prompt=PROMPT, max_tokens=TOKENS, temperature=0)
        assert failed.value.status_code == 503

        status = httpx.get(gw.url + "/admin/status").json()["backends"]
        assert status["tuned"]["adapter"] == {"path": str(adapter_dir.resolve()), "sha256": adapter_sha256(adapter_dir),
                                              "format": "peft", "merged": True, "scale": 1.0}
        assert "adapter" not in status["base"] and "adapter" not in status["broken"]

