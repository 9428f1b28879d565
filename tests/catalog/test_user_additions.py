"""A user's own GPUs, prices and models: from a catalog YAML file and from a local Hugging Face config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.catalog import CatalogError, PriceMode, builtin_catalog, load_catalog, load_hf_config

USER_YAML = """
sources:
  my-quote: {title: "Our reseller quote", url: "https://example.com/quote", date: "2025-06-01"}
providers:
  colo: {name: "Our colo", spot_discount: null, reserved_1y_discount: 0.4, reserved_3y_discount: 0.6,
         source: my-quote}
gpus:
  - id: b200
    name: "NVIDIA B200"
    memory_gb: 192
    usable_memory_gib: 178
    memory_bandwidth_gb_s: 8000
    bf16_tflops: 2250
    fp8_tflops: 4500
    interconnect: nvlink-5
    interconnect_gb_s: 1800
    sources: {spec: my-quote}
prices:
  - {gpu: b200, provider: colo, on_demand_usd: 5.0, source: my-quote}
  - {gpu: h100-sxm, provider: colo, on_demand_usd: 1.5}
models:
  - {id: my-llama, name: "Fine-tuned Llama", layers: 32, hidden_size: 4096, heads: 32, kv_heads: 8, head_dim: 128,
     intermediate_size: 14336, vocab_size: 128256, max_context: 8192}
"""

LLAMA_31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
MIXTRAL_CONFIG = {
    "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
    "num_local_experts": 8, "num_experts_per_tok": 2,
}


def test_user_yaml_adds_gpus_models_providers_and_prices(tmp_path: Path) -> None:
    file = tmp_path / "extra.yaml"
    file.write_text(USER_YAML)

    catalog = load_catalog(file)

    b200 = catalog.gpu("b200")
    assert b200.usable_memory_gib == 178 and b200.source("spec").title == "Our reseller quote"
    price, usd = b200.cheapest_price(PriceMode.RESERVED_3Y)
    assert price.provider.id == "colo" and usd == pytest.approx(2.0)
    # an unsourced user price is accepted and marked as user-supplied; built-in prices stay
    h100 = catalog.gpu("h100-sxm")
    assert {p.provider.id for p in h100.prices} >= {"colo", "lambda", "aws"}
    assert h100.cheapest_price(PriceMode.ON_DEMAND)[0].provider.id == "colo"
    assert catalog.model("my-llama").total_params == builtin_catalog().model("llama-3-8b").total_params
    assert "b200" not in builtin_catalog().gpus  # the built-in catalog is not modified


def test_user_yaml_errors_name_the_file_and_key(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("models:\n  - {id: broken, layers: 32, hidden_size: 4096, heads: 32, kv_heads: 5, head_dim: 128,"
                    " intermediate_size: 1, vocab_size: 1, max_context: 1}\n")
    with pytest.raises(CatalogError, match=r"bad\.yaml.*kv_heads \(5\) must divide heads \(32\)"):
        load_catalog(file)
    file.write_text("gpus: {}\nmodelz: []\n")
    with pytest.raises(CatalogError, match="unknown top-level keys"):
        load_catalog(file)
    with pytest.raises(CatalogError, match="no such catalog file"):
        load_catalog(tmp_path / "missing.yaml")


def test_hf_config_json_reproduces_the_catalog_entry(tmp_path: Path) -> None:
    (tmp_path / "Llama-3.1-8B-Instruct").mkdir()
    config = tmp_path / "Llama-3.1-8B-Instruct" / "config.json"
    config.write_text(json.dumps(LLAMA_31_8B_CONFIG))

    model = load_hf_config(config.parent)  # a checkpoint directory works as well as the file

    reference = builtin_catalog().model("llama-3.1-8b")
    assert model.id == "llama-3.1-8b-instruct"
    assert model.head_dim == 128  # computed as hidden_size / heads when the config omits it
    assert model.total_params == reference.total_params
    assert model.kv_bytes_per_token(2) == reference.kv_bytes_per_token(2)
    assert model.max_context == 131072 and model.source.url.startswith("file://")


def test_hf_config_reads_moe_experts(tmp_path: Path) -> None:
    config = tmp_path / "mixtral.json"
    config.write_text(json.dumps(MIXTRAL_CONFIG))

    model = load_hf_config(config)

    assert model.experts == 8 and model.experts_per_token == 2
    assert model.total_params / 1e9 == pytest.approx(46.7, rel=0.01)
    assert model.active_params / 1e9 == pytest.approx(12.9, rel=0.01)


def test_catalog_model_accepts_a_config_path(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LLAMA_31_8B_CONFIG))
    assert builtin_catalog().model(str(config)).layers == 32


def test_hf_config_errors_name_the_missing_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    with pytest.raises(CatalogError, match="missing num_hidden_layers"):
        load_hf_config(config)
    config.write_text("{not json")
    with pytest.raises(CatalogError, match="cannot read a JSON config"):
        load_hf_config(config)
    with pytest.raises(CatalogError, match="no such file"):
        load_hf_config(tmp_path / "absent" / "config.json")


def test_files_that_are_not_utf8_text_are_catalog_errors(tmp_path: Path) -> None:
    binary = tmp_path / "garbage.yaml"
    binary.write_bytes(b"\xff\xfe\x00gpus: {}\n")
    with pytest.raises(CatalogError, match=r"garbage\.yaml"):
        load_catalog(binary)
    config = tmp_path / "config.json"
    config.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CatalogError, match=r"config\.json"):
        load_hf_config(config)
