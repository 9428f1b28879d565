"""A LoRA adapter's files on disk: which kind a path is, and the SHA-256 of its content.

Shared by the runtimes that serve an adapter (`backends/`: the served adapter's identity) and the registry that
records one (`registry/`), so both name the same adapter by the same hash. A PEFT adapter is a folder with
`adapter_config.json` and its weights (`*.safetensors` or `*.bin`); a GGUF LoRA is one `.gguf` file. A folder's
hash covers the config and the weights, each file's name (relative to the folder) and bytes, so the same adapter
copied elsewhere hashes the same; a `.gguf` file's covers its bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PEFT_CONFIG = "adapter_config.json"
_PEFT_WEIGHTS = ("*.safetensors", "*.bin")
_CHUNK_BYTES = 1 << 20


class AdapterFileError(ValueError):
    """The path is not a usable adapter; the message says what is missing."""


def peft_files(folder: Path) -> tuple[Path, list[Path]]:
    """The PEFT folder's config file and its weight files (sorted), or AdapterFileError saying what is missing."""
    if not folder.is_dir():
        raise AdapterFileError(f"{folder}: not a folder")
    config = folder / PEFT_CONFIG
    if not config.is_file():
        raise AdapterFileError(f"{folder}: not a PEFT adapter folder (no {PEFT_CONFIG})")
    weights = sorted({file for pattern in _PEFT_WEIGHTS for file in folder.glob(pattern) if file.is_file()})
    if not weights:
        raise AdapterFileError(f"{folder}: no adapter weights (adapter_model.safetensors or .bin)")
    return config, weights


def adapter_sha256(path: Path) -> str:
    """The content hash of a PEFT adapter folder or a `.gguf` LoRA file (see the module's docstring)."""
    if path.is_dir():
        config, weights = peft_files(path)
        return _digest([config, *weights], root=path)
    if path.is_file() and path.suffix == ".gguf":
        return _digest([path], root=None)
    raise AdapterFileError(f"{path}: expected a PEFT adapter folder or a .gguf LoRA file")


def _digest(files: list[Path], root: Path | None) -> str:
    digest = hashlib.sha256()
    for file in files:
        if root is not None:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(_CHUNK_BYTES):
                digest.update(block)
    return digest.hexdigest()


__all__ = ["PEFT_CONFIG", "AdapterFileError", "adapter_sha256", "peft_files"]
