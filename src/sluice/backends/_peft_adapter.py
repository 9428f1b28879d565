"""A PEFT LoRA adapter applied to a transformers model as it loads: checked, fitted, and (by default) merged.

Every way an adapter can be wrong is a `BackendNotReady` naming the `adapter` key, raised at load: the backend is
`failed` in /health/ready with the reason, and the rest of the gateway serves on.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.backends.base import ServedAdapter
from sluice.config import TransformersBackendConfig
from sluice.errors import BackendNotReady
from sluice.lora_files import AdapterFileError, adapter_sha256, peft_files

_ERROR_LINES = 2  # PEFT lists every mismatched tensor: the heading and the first say what is wrong
_ERROR_CHARS = 400  # ... on one line, when it lists missing or unexpected keys


@dataclass(slots=True, frozen=True)
class PeftAdapter:
    """An adapter folder checked before the base model loads (a bad one fails in milliseconds, not after the
    weights), then applied to the loaded model."""

    folder: Path
    sha256: str
    merge: bool

    @classmethod
    def check(cls, config: TransformersBackendConfig, base_dir: Path) -> PeftAdapter:
        """The files are there, the adapter names this base (unless `adapter_base_check: false`), peft imports."""
        assert config.adapter is not None
        folder = Path(config.adapter).expanduser().resolve()
        try:
            config_file, _ = peft_files(folder)
            sha256 = adapter_sha256(folder)
        except AdapterFileError as exc:
            raise BackendNotReady(f"adapter: {exc}") from None
        trained_on = _read_settings(config_file).get("base_model_name_or_path")
        if config.adapter_base_check and isinstance(trained_on, str) and trained_on:
            _check_base(trained_on, base_dir, folder)
        if importlib.util.find_spec("peft") is None:
            raise BackendNotReady("adapter: serving a PEFT adapter needs the peft package: "
                                  "pip install 'sluicegate[local]' (see docs/local-models.md)")
        return cls(folder, sha256, config.adapter_merge)

    def apply(self, model: Any, base_dir: Path) -> tuple[Any, ServedAdapter]:
        """`model` with the adapter applied (merged into its weights when `merge`), changed in place."""
        from peft import PeftModel

        try:
            # strict: an adapter with tensors the model lacks (or the reverse) is an error, not a warning
            adapted = PeftModel.from_pretrained(model, self.folder, strict_adapter_check="error",
                                                local_files_only=True)
        except Exception as exc:
            raise BackendNotReady(f"adapter {self.folder} does not fit the model at {base_dir}: "
                                  f"{_summary(exc)}") from exc
        if self.merge:
            adapted = adapted.merge_and_unload()
        return adapted, ServedAdapter(path=str(self.folder), sha256=self.sha256, format="peft", merged=self.merge)


def _read_settings(config_file: Path) -> dict[str, Any]:
    try:
        settings = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendNotReady(f"adapter: {config_file} is not readable JSON ({exc})") from None
    if not isinstance(settings, dict):
        raise BackendNotReady(f"adapter: {config_file} is not a JSON object")
    return settings


def _check_base(trained_on: str, base_dir: Path, folder: Path) -> None:
    """The adapter's `base_model_name_or_path` must be this base: the same folder, or a hub id or path whose last
    part is the folder's name (`HuggingFaceTB/SmolLM2-135M` served from `/models/SmolLM2-135M`), case aside."""
    named = Path(trained_on.rstrip("/")).expanduser()
    if named.name.lower() == base_dir.name.lower():
        return
    if named.is_absolute() and named.exists() and named.resolve() == base_dir.resolve():
        return
    raise BackendNotReady(f"adapter {folder} was trained on {trained_on!r}, not on this backend's `path` "
                          f"({base_dir}); serve it on its own base, or set `adapter_base_check: false` when "
                          "that base is this model under another name")


def _summary(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    more = f" (and {len(lines) - _ERROR_LINES} more)" if len(lines) > _ERROR_LINES else ""
    text = " ".join(lines[:_ERROR_LINES])
    text = text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "…"
    return f"{type(exc).__name__}: {text}{more}"
