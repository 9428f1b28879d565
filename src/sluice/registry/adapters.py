"""A LoRA adapter on disk, read for the registry: its content hash, rank and alpha, the base it was trained on.

A PEFT adapter is a folder with `adapter_config.json` (`r`, `lora_alpha`, `base_model_name_or_path`) and its
weights (`adapter_model.safetensors` or `.bin`); a GGUF LoRA is one `.gguf` file (its hash only). The hash covers
the config and the weights, names included, so the same adapter copied elsewhere hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sluice.registry.versions import Adapter, RegistryError

_WEIGHTS = ("*.safetensors", "*.bin")
_CHUNK = 1 << 20


def inspect_adapter(path: Path) -> Adapter:
    """The adapter at `path` (a PEFT folder or a GGUF LoRA file); RegistryError saying what is missing."""
    if path.is_dir():
        config_file = path / "adapter_config.json"
        if not config_file.is_file():
            raise RegistryError(f"{path}: not a PEFT adapter folder (no adapter_config.json)")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RegistryError(f"{config_file}: not readable JSON ({error})") from None
        weights = sorted({file for pattern in _WEIGHTS for file in path.glob(pattern) if file.is_file()})
        if not weights:
            raise RegistryError(f"{path}: no adapter weights (adapter_model.safetensors or .bin)")
        rank, alpha = config.get("r"), config.get("lora_alpha")
        return Adapter(uri=str(path.resolve()), sha256=_digest([config_file, *weights], path),
                       rank=int(rank) if isinstance(rank, int) else None,
                       alpha=float(alpha) if isinstance(alpha, int | float) else None,
                       base_model=config.get("base_model_name_or_path") or None)
    if path.is_file() and path.suffix == ".gguf":
        return Adapter(uri=str(path.resolve()), sha256=_digest([path], None))
    raise RegistryError(f"{path}: expected a PEFT adapter folder or a .gguf LoRA file")


def file_sha256(path: Path) -> str:
    """The SHA-256 of one file (a training dataset, for lineage)."""
    if not path.is_file():
        raise RegistryError(f"{path}: no such file")
    return _digest([path], None)


def _digest(files: list[Path], root: Path | None) -> str:
    digest = hashlib.sha256()
    for file in files:
        if root is not None:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


__all__ = ["file_sha256", "inspect_adapter"]
