"""The built-in catalogs: every number sourced and dated, every entry physically sane, lookups that help."""

from __future__ import annotations

import re

import pytest

from sluice.catalog import GPU, CatalogError, ModelArch, PriceMode, UnknownIdError, builtin_catalog

CATALOG = builtin_catalog()
GPUS = list(CATALOG.gpus.values())
MODELS = list(CATALOG.models.values())
DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")

REQUIRED_GPUS = {"a100-40gb-sxm", "a100-40gb-pcie", "a100-80gb-sxm", "a100-80gb-pcie", "h100-sxm", "h100-pcie",
                 "h200", "l4", "l40s", "a10g", "rtx-3090", "rtx-4090", "mi300x"}
REQUIRED_MODELS = {"llama-3-8b", "llama-3.1-8b", "llama-3-70b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b",
                   "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b", "gemma-2-9b", "gemma-2-27b", "phi-3-mini"}
# Families whose attention width equals the residual width (Gemma-2 and Qwen3 deliberately differ).
SQUARE_ATTENTION_FAMILIES = {"llama", "mistral", "mixtral", "qwen2.5", "phi-3"}


def test_catalog_covers_the_gpus_and_models_the_issue_names() -> None:
    assert set(CATALOG.gpus) >= REQUIRED_GPUS
    assert set(CATALOG.models) >= REQUIRED_MODELS


def test_every_source_has_a_title_url_and_date() -> None:
    for source in CATALOG.sources.values():
        assert source.title and source.url.startswith("https://"), source
        assert DATE.match(source.date), source


@pytest.mark.parametrize("gpu", GPUS, ids=lambda gpu: gpu.id)
def test_every_gpu_number_names_a_dated_source(gpu: GPU) -> None:
    table = dict(gpu.sources)
    assert {"spec", "usable_memory"} <= set(table)
    assert all(DATE.match(source.date) for source in table.values())
    for price in gpu.prices:
        assert DATE.match(price.source.date) and price.on_demand_usd_per_hour > 0


@pytest.mark.parametrize("gpu", GPUS, ids=lambda gpu: gpu.id)
def test_gpu_specs_are_physically_sane(gpu: GPU) -> None:
    # CUDA sees a little less than the marketing capacity (ECC, driver reserve), never more.
    assert 0.9 * gpu.memory_gb <= gpu.usable_memory_gib <= gpu.memory_gb
    assert 100 <= gpu.memory_bandwidth_gb_s <= 10_000
    assert 10 <= gpu.bf16_tflops <= 5_000
    for faster in (gpu.fp8_tflops, gpu.int8_tops):
        assert faster is None or faster >= gpu.bf16_tflops  # 8-bit tensor cores run at least as fast
    assert gpu.interconnect_gb_s > 0 and gpu.max_gpus_per_node >= 1


def test_provider_discounts_make_spot_and_reserved_cheaper_than_on_demand() -> None:
    for gpu in GPUS:
        for price in gpu.prices:
            on_demand = price.usd_per_hour(PriceMode.ON_DEMAND)
            for mode in (PriceMode.SPOT, PriceMode.RESERVED_1Y, PriceMode.RESERVED_3Y):
                discounted = price.usd_per_hour(mode)
                assert discounted is None or discounted < on_demand
            three, one = price.usd_per_hour(PriceMode.RESERVED_3Y), price.usd_per_hour(PriceMode.RESERVED_1Y)
            assert three is None or one is None or three <= one


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.id)
def test_model_shapes_are_consistent(model: ModelArch) -> None:
    assert model.heads % model.kv_heads == 0
    assert model.source.url.startswith("https://") and DATE.match(model.source.date)
    if model.family in SQUARE_ATTENTION_FAMILIES:
        assert model.head_dim * model.heads == model.hidden_size


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.id)
def test_parameter_count_from_the_architecture_matches_the_published_count(model: ModelArch) -> None:
    assert model.params_b is not None
    assert model.total_params / 1e9 == pytest.approx(model.params_b, rel=0.03)
    if model.is_moe:
        assert model.active_params_b is not None
        assert model.active_params / 1e9 == pytest.approx(model.active_params_b, rel=0.03)
        assert model.active_params < model.total_params


def test_mixtral_counts_total_and_active_parameters_separately() -> None:
    mixtral = CATALOG.model("mixtral-8x7b")
    assert mixtral.total_params / 1e9 == pytest.approx(46.7, rel=0.01)
    assert mixtral.active_params / 1e9 == pytest.approx(12.9, rel=0.01)


def test_llama_3_8b_kv_bytes_per_token_is_gqa_aware() -> None:
    # 2 (K and V) × 32 layers × 8 KV heads × 128 head dim × 2 bytes; without GQA it would be 4× more
    assert CATALOG.model("llama-3-8b").kv_bytes_per_token(2) == 2 * 32 * 8 * 128 * 2 == 131072


def test_unknown_ids_are_errors_that_suggest_close_ids() -> None:
    with pytest.raises(UnknownIdError) as error:
        CATALOG.gpu("h100")
    assert error.value.suggestions[:2] == ["h100-pcie", "h100-sxm"]
    assert "unknown GPU 'h100'" in str(error.value)
    with pytest.raises(UnknownIdError, match=r"llama-3\.1-8b"):
        CATALOG.model("llama3.1-8b")


def test_ids_are_case_insensitive() -> None:
    assert CATALOG.gpu("H100-SXM").id == "h100-sxm"


def test_catalog_errors_are_value_errors_naming_the_bad_key() -> None:
    with pytest.raises(CatalogError, match=r"gpus\[bad\]\.memory_bandwidth_gb_s"):
        CATALOG.merged({"gpus": [{"id": "bad", "memory_gb": 1, "usable_memory_gib": 1, "bf16_tflops": 1,
                                  "interconnect_gb_s": 1, "memory_bandwidth_gb_s": -3}]}, "test.yaml")
