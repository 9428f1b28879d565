"""Which price a target gets: config overrides, GPU-hours (declared GPUs, the sim backend), catalog, or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.config import parse_config
from sluice.cost import GPUPriced, PriceBook, TokenPriced
from sluice.errors import ConfigError

H100_SXM_CHEAPEST_ON_DEMAND = 2.99  # gpus.yaml: h100-sxm at lambda and runpod, USD per GPU-hour


def book(backends: dict[str, Any], pricing: dict[str, Any] | None = None) -> PriceBook:
    config = parse_config({"backends": backends, "pricing": pricing or {}})
    return PriceBook(config.pricing, config.backends)


API = {"type": "openai", "base_url": "https://api.example/v1"}
PRICE = {"input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0}


def test_api_backends_are_priced_from_the_catalog() -> None:
    prices = book({"openai": API, "claude": {"type": "anthropic"}})
    gpt = prices.price_for("openai", "gpt-4o-mini")
    assert isinstance(gpt, TokenPriced) and gpt.price.input_usd_per_1m == 0.15
    assert "catalog: gpt-4o-mini" in gpt.origin and "platform.openai.com" in gpt.origin
    claude = prices.price_for("claude", "claude-3-5-haiku-latest")
    assert isinstance(claude, TokenPriced) and claude.price.cache_write_usd_per_1m == 1.00
    assert prices.price_for("openai", "my-own-finetune") is None


def test_local_backends_are_never_priced_from_the_api_catalog() -> None:
    prices = book({"smol": {"type": "gguf", "path": "builtin:smollm2"}})
    assert prices.price_for("smol", "gpt-4o") is None


def test_overrides_win_in_order_target_model_then_target_then_gpu_then_model_then_catalog() -> None:
    pricing = {
        "targets": {"vllm:special": {**PRICE, "input_usd_per_1m": 9.0}, "openai": {**PRICE, "input_usd_per_1m": 8.0}},
        "models": {"gpt-4o": {**PRICE, "input_usd_per_1m": 7.0}, "Llama-3": {**PRICE, "input_usd_per_1m": 6.0}},
    }
    prices = book({"openai": API, "vllm": {**API, "gpu": "h100-sxm"}, "other": API}, pricing)
    assert prices.price_for("vllm", "special").price.input_usd_per_1m == 9.0  # type: ignore[union-attr]
    assert prices.price_for("openai", "gpt-4o").price.input_usd_per_1m == 8.0  # type: ignore[union-attr]
    assert isinstance(prices.price_for("vllm", "Llama-3"), GPUPriced)  # GPU-hours beat a per-model price
    assert prices.price_for("other", "gpt-4o").price.input_usd_per_1m == 7.0  # type: ignore[union-attr]
    assert prices.price_for("other", "llama-3").price.input_usd_per_1m == 6.0  # type: ignore[union-attr]
    assert prices.price_for("other", "gpt-4o-mini").price.input_usd_per_1m == 0.15  # type: ignore[union-attr]


def test_the_sim_backend_is_priced_by_its_gpus_from_the_gpu_catalog() -> None:
    prices = book({"sim": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "tensor_parallel_size": 2}})
    priced = prices.price_for("sim", "llama-3.1-8b")
    assert isinstance(priced, GPUPriced)
    assert (priced.gpu, priced.gpu_count, priced.usd_per_gpu_hour) == ("h100-sxm", 2, H100_SXM_CHEAPEST_ON_DEMAND)
    assert priced.meter.usd_per_hour == pytest.approx(2 * H100_SXM_CHEAPEST_ON_DEMAND)
    assert "GPU catalog: h100-sxm on-demand" in priced.origin
    assert prices.price_for("sim", "another-model-on-it") is priced  # one meter per backend


def test_a_declared_gpu_hour_price_wins_over_the_catalog() -> None:
    prices = book({"vllm": {**API, "gpu": "l4", "gpu_count": 4, "gpu_hour_usd": 0.5},
                   "rented": {**API, "gpu_hour_usd": 1.25}})
    vllm = prices.price_for("vllm", "m")
    assert isinstance(vllm, GPUPriced) and vllm.meter.usd_per_hour == pytest.approx(2.0)
    assert vllm.origin == "backends.vllm.gpu_hour_usd"
    rented = prices.price_for("rented", "m")
    assert isinstance(rented, GPUPriced) and rented.gpu is None and rented.meter.usd_per_hour == 1.25


def test_gpu_weights_and_window_come_from_config() -> None:
    prices = book({"vllm": {**API, "gpu": "l4"}},
                  {"gpu": {"window_s": 60, "prompt_token_weight": 0.5, "cached_token_weight": 0.0}})
    priced = prices.price_for("vllm", "m")
    assert isinstance(priced, GPUPriced)
    assert priced.meter.window_s == 60 and (priced.weights.prompt, priced.weights.cached_prompt) == (0.5, 0.0)


def test_an_unknown_gpu_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"backends\.vllm\.gpu: unknown GPU 'h1000'"):
        book({"vllm": {**API, "gpu": "h1000"}})


def test_a_gpu_without_a_catalog_price_needs_gpu_hour_usd() -> None:
    with pytest.raises(ConfigError, match=r"backends\.vllm\.gpu_hour_usd: the GPU catalog has no price for "
                                          r"a100-40gb-pcie"):
        book({"vllm": {**API, "gpu": "a100-40gb-pcie"}})
    sim = {"type": "sim", "model": "llama-3.1-8b", "gpu": "a100-40gb-pcie"}
    assert book({"sim": sim}).price_for("sim", "llama-3.1-8b") is None  # the sim stays usable, unpriced


def test_extra_price_files_layer_over_the_catalog_and_bad_ones_name_pricing_files(tmp_path: Path) -> None:
    file = tmp_path / "ours.yaml"
    file.write_text(yaml.safe_dump({"models": [{"model": "our-model", "input_usd_per_1m": 0.3,
                                                "output_usd_per_1m": 0.9, "source": "https://intranet/pricing",
                                                "as_of": "2026-11-20"}]}))
    prices = book({"openai": API}, {"files": [str(file)]})
    assert prices.price_for("openai", "our-model").price.output_usd_per_1m == 0.9  # type: ignore[union-attr]
    file.write_text("models: [{model: x}]")
    with pytest.raises(ConfigError, match=r"pricing\.files: .*ours\.yaml: models\[0\] \(x\)\.source"):
        book({"openai": API}, {"files": [str(file)]})


def test_config_refuses_target_prices_for_unknown_backends_and_bad_gpu_fields() -> None:
    with pytest.raises(ConfigError, match=r"pricing\.targets\.nope:m: unknown backend 'nope'"):
        parse_config({"backends": {"a": API}, "pricing": {"targets": {"nope:m": PRICE}}})
    with pytest.raises(ConfigError, match=r"backends\.a: .*gpu_count is set but neither gpu nor gpu_hour_usd"):
        parse_config({"backends": {"a": {**API, "gpu_count": 2}}})
    with pytest.raises(ConfigError, match=r"pricing\.models\.m\.output_usd_per_1m"):
        parse_config({"pricing": {"models": {"m": {"input_usd_per_1m": 1}}}})
