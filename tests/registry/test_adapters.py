"""LoRA adapters on disk as the registry reads them: hash, rank, alpha, base; clear errors for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.registry import RegistryError, file_sha256, inspect_adapter


def peft_folder(folder: Path, weights: bytes = b"\x01\x02", **config: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, **config}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def test_a_peft_folder_gives_its_rank_alpha_base_and_a_hash_of_its_content(tmp_path: Path) -> None:
    first = inspect_adapter(peft_folder(tmp_path / "a", base_model_name_or_path="base/x"))
    copy = inspect_adapter(peft_folder(tmp_path / "elsewhere" / "b", base_model_name_or_path="base/x"))
    changed = inspect_adapter(peft_folder(tmp_path / "c", weights=b"\x01\x03", base_model_name_or_path="base/x"))
    assert (first.rank, first.alpha, first.base_model) == (4, 8.0, "base/x")
    assert first.sha256 == copy.sha256 != changed.sha256  # the content, not where it lies
    assert first.uri == str((tmp_path / "a").resolve())


def test_a_gguf_lora_is_hashed_and_anything_else_is_refused(tmp_path: Path) -> None:
    gguf = tmp_path / "lora.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 16)
    assert inspect_adapter(gguf).sha256 == file_sha256(gguf)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match=r"no adapter_config\.json"):
        inspect_adapter(tmp_path / "empty")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "adapter_config.json").write_text("{}")
    with pytest.raises(RegistryError, match="no adapter weights"):
        inspect_adapter(tmp_path / "noweights")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "adapter_config.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not readable JSON"):
        inspect_adapter(tmp_path / "bad")
    with pytest.raises(RegistryError, match="expected a PEFT adapter folder"):
        inspect_adapter(tmp_path / "notes.txt")
    with pytest.raises(RegistryError, match="no such file"):
        file_sha256(tmp_path / "missing.jsonl")
