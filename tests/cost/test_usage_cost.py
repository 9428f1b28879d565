"""Cost arithmetic on hand-built usages: input, cached input, cache writes, output; GPU token weights."""

from __future__ import annotations

import pytest

from sluice.backends import Usage
from sluice.catalog import TokenPrice
from sluice.cost import TokenSplit, TokenWeights, token_cost_usd

GPT_4O = TokenPrice(input_usd_per_1m=2.50, output_usd_per_1m=10.00, cached_input_usd_per_1m=1.25)
HAIKU_35 = TokenPrice(input_usd_per_1m=0.80, output_usd_per_1m=4.00, cached_input_usd_per_1m=0.08,
                      cache_write_usd_per_1m=1.00)


def test_openai_usage_bills_cached_prompt_tokens_at_the_cached_rate() -> None:
    # 1000 prompt tokens of which 400 cached; 500 completion tokens of which 100 reasoning (billed as output)
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=100)
    expected = (600 * 2.50 + 400 * 1.25 + 500 * 10.00) / 1e6
    assert token_cost_usd(GPT_4O, usage) == pytest.approx(expected)
    assert expected == pytest.approx(0.007)


def test_anthropic_usage_bills_cache_reads_and_writes_apart() -> None:
    # Anthropic: input 12 + cache read 5 + cache write 3 = 20 prompt tokens; 10 output tokens
    usage = Usage(prompt_tokens=20, completion_tokens=10, cached_tokens=5, cache_write_tokens=3)
    assert TokenSplit.of(usage) == TokenSplit(fresh_prompt=12, cached_prompt=5, cache_write=3, completion=10)
    assert token_cost_usd(HAIKU_35, usage) == pytest.approx((12 * 0.80 + 5 * 0.08 + 3 * 1.00 + 10 * 4.00) / 1e6)


def test_missing_cached_and_write_prices_fall_back_to_the_input_price() -> None:
    flat = TokenPrice(input_usd_per_1m=1.0, output_usd_per_1m=2.0)
    usage = Usage(prompt_tokens=100, completion_tokens=50, cached_tokens=40, cache_write_tokens=10)
    assert token_cost_usd(flat, usage) == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)


def test_cached_counts_larger_than_the_prompt_are_clipped() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=0, cached_tokens=25)
    assert TokenSplit.of(usage) == TokenSplit(fresh_prompt=0, cached_prompt=10, cache_write=0, completion=0)
    assert token_cost_usd(GPT_4O, usage) == pytest.approx(10 * 1.25 / 1e6)


def test_zero_usage_costs_nothing() -> None:
    assert token_cost_usd(GPT_4O, Usage(0, 0)) == 0.0


def test_gpu_weights_count_prompt_tokens_as_a_fraction_of_an_output_token() -> None:
    weights = TokenWeights(prompt=0.25, cached_prompt=0.025)
    assert weights.weigh(Usage(prompt_tokens=1000, completion_tokens=100)) == pytest.approx(350.0)
    assert weights.weigh(Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=800)) == pytest.approx(
        200 * 0.25 + 800 * 0.025 + 100)
