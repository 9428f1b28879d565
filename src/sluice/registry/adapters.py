"""A LoRA adapter on disk, read for the registry: its content hash, rank and alpha, the base it was trained on.

A PEFT adapter is a folder with `adapter_config.json` (`r`, `lora_alpha`, `base_model_name_or_path`) and its
weights (`adapter_model.safetensors` or `.bin`); a GGUF LoRA is one `.gguf` file (its hash only). The hash is
`sluice.lora_files.adapter_sha256`, the one the runtimes report for the adapter they serve (`/admin/status`), so a
registered version and a serving backend name the same adapter by the same hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sluice.lora_files import PEFT_CONFIG, AdapterFileError, adapter_sha256
from sluice.registry.versions import Adapter, RegistryError


def inspect_adapter(path: Path) -> Adapter:
    """The adapter at `path` (a PEFT folder or a GGUF LoRA file); RegistryError saying what is missing."""
    config_file = path / PEFT_CONFIG
    config: dict[str, Any] = {}
    if path.is_dir() and config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RegistryError(f"{config_file}: not readable JSON ({error})") from None
        if not isinstance(config, dict):
            raise RegistryError(f"{config_file}: not a JSON object")
    try:
        sha256 = adapter_sha256(path)
    except AdapterFileError as error:
        raise RegistryError(str(error)) from None
    if not path.is_dir():
        return Adapter(uri=str(path.resolve()), sha256=sha256)
    rank, alpha = config.get("r"), config.get("lora_alpha")
    return Adapter(uri=str(path.resolve()), sha256=sha256, rank=int(rank) if isinstance(rank, int) else None,
                   alpha=float(alpha) if isinstance(alpha, int | float) else None,
                   base_model=config.get("base_model_name_or_path") or None)


def file_sha256(path: Path) -> str:
    """The SHA-256 of one file (a training dataset, for lineage)."""
    if not path.is_file():
        raise RegistryError(f"{path}: no such file")
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


__all__ = ["file_sha256", "inspect_adapter"]
