"""A GGUF LoRA file checked against its base GGUF before llama.cpp loads it.

llama.cpp checks an adapter too, but llama-cpp-python 0.3.36 misses its refusal (a NULL pointer is not `None`),
sets the failed adapter anyway, and the first decode dies with SIGSEGV. So the checks llama.cpp makes
(`llama_adapter_lora_init_impl` in llama-adapter.cpp) are made here first, from the two files' headers, and a
bad adapter is a `BackendNotReady` naming the `lora` key instead of a crashing worker.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sluice.errors import BackendNotReady

_MAGIC = b"GGUF"
# GGUF metadata value types -> struct format of one scalar (8: string, 9: array are read apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 4  # GGML_MAX_DIMS


class _Corrupt(ValueError):
    pass


@dataclass(slots=True, frozen=True)
class GGUFHeader:
    """What a GGUF file declares: its scalar and string metadata (arrays skipped) and each tensor's shape, in
    ggml's order (`ne`: the innermost dimension first)."""

    metadata: dict[str, Any]
    tensors: dict[str, tuple[int, ...]]


def read_header(path: Path) -> GGUFHeader:
    """The header of the GGUF file at `path` (reads the metadata and tensor table only, never the weights)."""
    size = path.stat().st_size
    with path.open("rb") as file:
        if file.read(4) != _MAGIC:
            raise _Corrupt("not a GGUF file (no GGUF magic at its start)")
        version, tensor_count, kv_count = _unpack(file, "<I"), _unpack(file, "<Q"), _unpack(file, "<Q")
        if version < 2:
            raise _Corrupt(f"GGUF version {version} is not supported")
        if tensor_count > size or kv_count > size:
            raise _Corrupt("corrupt GGUF header (it counts more entries than the file has bytes)")
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _string(file, size)
            value = _value(file, _unpack(file, "<I"), size)
            if value is not None:
                metadata[key] = value
        tensors: dict[str, tuple[int, ...]] = {}
        for _ in range(tensor_count):
            name = _string(file, size)
            dims = _unpack(file, "<I")
            if dims > _MAX_DIMS:
                raise _Corrupt(f"tensor {name!r} has {dims} dimensions")
            tensors[name] = tuple(_unpack(file, "<Q") for _ in range(dims))
            file.seek(4 + 8, 1)  # its type and offset
    return GGUFHeader(metadata, tensors)


def check_lora(lora: Path, base: Path) -> None:
    """The checks llama.cpp makes of a LoRA against its base model, as a `BackendNotReady` saying which failed."""
    try:
        adapter, model = read_header(lora), read_header(base)
    except (OSError, _Corrupt, struct.error, UnicodeDecodeError) as exc:
        raise BackendNotReady(f"lora {lora}: {_reason(exc)}") from None
    kind = adapter.metadata.get("general.type")
    if kind != "adapter" or adapter.metadata.get("adapter.type") != "lora":
        what = "a model, not an adapter" if kind == "model" else f"general.type {kind!r}, adapter.type " \
            f"{adapter.metadata.get('adapter.type')!r}"
        raise BackendNotReady(f"lora {lora}: not a GGUF LoRA adapter ({what}; expected adapter / lora)")
    arch, base_arch = adapter.metadata.get("general.architecture"), model.metadata.get("general.architecture")
    if arch != base_arch:
        raise BackendNotReady(f"lora {lora}: made for architecture {arch!r}, the model is {base_arch!r}")
    for name, (a, b) in _pairs(lora, adapter.tensors).items():
        weight = model.tensors.get(name)
        if weight is None:
            raise BackendNotReady(f"lora {lora}: tensor {name!r} is not in the model (made for another model?)")
        if not _fits(name, weight, a, b):
            raise BackendNotReady(f"lora {lora}: tensor {name!r} of the model is {list(weight)}, the adapter's "
                                  f"lora_a {list(a)} and lora_b {list(b)} do not fit it (made for another model?)")


def _pairs(lora: Path, tensors: dict[str, tuple[int, ...]]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each adapted model tensor's (lora_a, lora_b) shapes; norm vectors are skipped (llama.cpp ignores them)."""
    halves: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in tensors.items():
        base, _, half = name.rpartition(".")
        if half in ("lora_a", "lora_b"):
            halves.setdefault(base, {})[half] = shape
        elif not name.endswith("_norm.weight"):
            raise BackendNotReady(f"lora {lora}: tensor {name!r} is neither a lora_a nor a lora_b")
    if not halves:
        raise BackendNotReady(f"lora {lora}: holds no LoRA tensors")
    incomplete = sorted(name for name, pair in halves.items() if len(pair) < 2)
    if incomplete:
        raise BackendNotReady(f"lora {lora}: tensor {incomplete[0]!r} has only one of lora_a / lora_b")
    return {name: (pair["lora_a"], pair["lora_b"]) for name, pair in halves.items()}


def _fits(name: str, weight: tuple[int, ...], a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """llama.cpp's shape rule: W (ne: in, out) gets A (in, r) and B (r, out); the token embedding's are swapped."""
    if len(weight) != 2 or len(a) != 2 or len(b) != 2:
        return False
    if name.endswith("token_embd.weight"):
        return weight[0] == b[1] and weight[1] == a[1]
    return weight[0] == a[0] and weight[1] == b[1] and a[1] == b[0]


def _unpack(file: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) < size:
        raise _Corrupt("the file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _string(file: BinaryIO, limit: int) -> str:
    length = _unpack(file, "<Q")
    if length > limit:
        raise _Corrupt("a string longer than the file")
    data = file.read(length)
    if len(data) < length:
        raise _Corrupt("the file ends inside its header")
    return data.decode("utf-8")


def _value(file: BinaryIO, kind: int, limit: int) -> Any:
    """One metadata value; an array is skipped (None): the checks need none, and a vocabulary is 100 k items."""
    if kind in _SCALARS:
        return _unpack(file, _SCALARS[kind])
    if kind == _STRING:
        return _string(file, limit)
    if kind != _ARRAY:
        raise _Corrupt(f"unknown metadata type {kind}")
    item_kind, count = _unpack(file, "<I"), _unpack(file, "<Q")
    if count > limit:
        raise _Corrupt("an array longer than the file")
    if item_kind in _SCALARS:
        file.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
    else:
        for _ in range(count):
            _value(file, item_kind, limit)
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"not readable ({exc.strerror or exc})"
    if isinstance(exc, _Corrupt):
        return str(exc)
    return "not a GGUF file (its header is corrupt)"
