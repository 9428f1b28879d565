"""A LoRA adapter's files and content hash: the runtimes that serve an adapter and the registry that records it
must name it by the same hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sluice.lora_files import AdapterFileError, adapter_sha256, peft_files
from sluice.registry.adapters import inspect_adapter


def peft_folder(folder: Path, weights: bytes = b"\x00weights") -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 4, "lora_alpha": 8, "base_model_name_or_path": "b"}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("not hashed: neither config nor weights")
    return folder


def test_a_peft_folder_hashes_as_the_registry_hashes_it_wherever_it_lies(tmp_path: Path) -> None:
    folder = peft_folder(tmp_path / "lora-v1")
    copy = Path(shutil.copytree(folder, tmp_path / "elsewhere" / "renamed"))
    (copy / "README.md").write_text("edited")

    assert adapter_sha256(folder) == inspect_adapter(folder).sha256 == adapter_sha256(copy)
    assert adapter_sha256(peft_folder(tmp_path / "lora-v2", b"\x01weights")) != adapter_sha256(folder)
    config, weights = peft_files(folder)
    assert config.name == "adapter_config.json" and [file.name for file in weights] == ["adapter_model.safetensors"]


def test_a_gguf_lora_hashes_as_the_registry_hashes_it(tmp_path: Path) -> None:
    file = tmp_path / "lora.gguf"
    file.write_bytes(b"GGUF" + bytes(range(64)))
    assert adapter_sha256(file) == inspect_adapter(file).sha256


@pytest.mark.parametrize(("make", "why"), [
    (lambda root: root / "missing", "expected a PEFT adapter folder or a .gguf LoRA file"),
    (lambda root: root, "no adapter_config.json"),
    (lambda root: (root / "adapter_config.json").write_text("{}") and root, "no adapter weights"),
], ids=["missing", "no-config", "no-weights"])
def test_what_is_not_an_adapter_says_what_is_missing(tmp_path: Path, make: object, why: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(AdapterFileError, match=why):
        adapter_sha256(path)
