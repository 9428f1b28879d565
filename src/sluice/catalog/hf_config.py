"""Read a local Hugging Face `config.json` (LlamaConfig-style keys) into a ModelArch."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from sluice.catalog.errors import CatalogError
from sluice.catalog.models import ModelArch, check_shape
from sluice.catalog.sources import Source

# Families whose config.json leaves these implicit (the transformers class hard-codes them).
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text"}
_QKV_BIAS = {"qwen2", "qwen2_moe"}
_QK_NORM = {"qwen3", "qwen3_moe", "gemma3_text"}
_SANDWICH_NORMS = {"gemma2", "gemma3_text"}


def is_hf_config_path(value: str) -> bool:
    """Whether a `--model` value names a local file or directory rather than a catalog id."""
    return value.endswith(".json") or Path(value).is_dir()


def load_hf_config(path: str | Path) -> ModelArch:
    """A ModelArch from `path` (a config.json, or a checkpoint directory holding one)."""
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{file}: no such file (expected a Hugging Face config.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CatalogError(f"{file}: cannot read a JSON config: {error}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{file}: a config.json must hold a JSON object")
    stamp = dt.date.fromtimestamp(file.stat().st_mtime).isoformat()
    source = Source(f"file:{file}", f"local Hugging Face config {file}", file.resolve().as_uri(), stamp)
    return model_from_hf_config(raw, source=source, default_id=_id_for(file))


def model_from_hf_config(raw: dict[str, Any], *, source: Source, default_id: str) -> ModelArch:
    """Map config.json keys to a ModelArch; multimodal configs are read through their `text_config`."""
    text_config = raw.get("text_config")
    config: dict[str, Any] = text_config if isinstance(text_config, dict) else raw
    where = str(source.id)
    if "kv_lora_rank" in config:
        raise CatalogError(f"{where}: multi-head latent attention (DeepSeek MLA) is not modelled by the planner")
    model_type = str(config.get("model_type", raw.get("model_type", "")))
    layers = _int(config, where, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _int(config, where, "hidden_size", "n_embd", "d_model")
    heads = _int(config, where, "num_attention_heads", "n_head")
    experts = int(config.get("num_local_experts") or config.get("num_experts") or 1)
    expert_width = config.get("moe_intermediate_size") if experts > 1 else None
    intermediate = int(expert_width or _int(config, where, "intermediate_size", "n_inner", "ffn_dim"))
    model = ModelArch(
        id=default_id, name=str(raw.get("_name_or_path") or default_id), family=model_type, layers=layers,
        hidden_size=hidden, heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads), intermediate_size=intermediate,
        vocab_size=_int(config, where, "vocab_size"),
        max_context=int(config.get("max_position_embeddings") or config.get("n_positions") or 4096),
        source=source, hf_repo=str(raw.get("_name_or_path", "")),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT)),
        experts=experts, experts_per_token=int(config.get("num_experts_per_tok") or (2 if experts > 1 else 1)),
        attention_bias=bool(config.get("attention_bias", model_type in _QKV_BIAS)),
        qk_norm=model_type in _QK_NORM, norms_per_layer=4 if model_type in _SANDWICH_NORMS else 2,
    )
    check_shape(model, where)
    return model


def _int(config: dict[str, Any], where: str, *keys: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise CatalogError(f"{where}: missing {keys[0]} (a positive integer)")


def _id_for(file: Path) -> str:
    stem = file.parent.name if file.name == "config.json" else file.stem
    return re.sub(r"[^a-z0-9.]+", "-", stem.lower()).strip("-") or "local-model"
