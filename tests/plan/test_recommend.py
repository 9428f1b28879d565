"""`recommend`: every option meets the objective, options are sorted by cost, impossible objectives explain."""

from __future__ import annotations

from sluice.catalog import PriceMode, builtin_catalog
from sluice.plan import SLO, Workload, recommend

CATALOG = builtin_catalog()
ALL_GPUS = list(CATALOG.gpus.values())


def test_options_meet_the_slo_and_come_cheapest_first() -> None:
    slo = SLO(ttft_s=0.5, tpot_s=0.05)
    result = recommend(CATALOG.model("llama-3.1-70b"), ALL_GPUS, slo, Workload(1024, 128, 32))
    assert result.options and result.reason is None
    costs = [option.cost.usd_per_million_output_tokens for option in result.options]
    assert costs == sorted(costs)
    for option in result.options:
        assert option.latency.ttft_s <= 0.5 and option.latency.tpot_s <= 0.05
        assert option.memory.fits
        assert option.cost.mode == PriceMode.ON_DEMAND


def test_an_impossible_slo_returns_no_options_and_a_reason() -> None:
    result = recommend(CATALOG.model("llama-3.1-70b"), ALL_GPUS, SLO(0.001, 0.001), Workload(1024, 128, 32))
    assert result.options == ()
    assert result.reason is not None and "no deployment meets the objective" in result.reason
    assert "closest" in result.reason and dict(result.rejections)["miss the latency objective"] > 0


def test_gpus_without_a_price_for_the_mode_are_skipped_with_a_reason() -> None:
    result = recommend(CATALOG.model("llama-3.1-8b"), [CATALOG.gpu("a100-40gb-pcie"), CATALOG.gpu("a10g")],
                       SLO(2, 0.2), Workload(512, 128, 4), price_mode=PriceMode.SPOT)
    reasons = dict(result.rejections)
    assert "with no spot price (a100-40gb-pcie)" in reasons
    assert all(option.deployment.gpu.id == "a10g" for option in result.options)


def test_high_concurrency_is_met_with_replicas() -> None:
    result = recommend(CATALOG.model("llama-3.1-8b"), [CATALOG.gpu("l4")], SLO(1.0, 0.1), Workload(1024, 128, 64),
                       quantizations=("bf16",), max_gpus=16)
    assert result.options
    assert max(option.replicas for option in result.options) > 1
    assert all(option.num_gpus <= 16 for option in result.options)


def test_multi_node_models_are_recommended_across_nodes_when_needed() -> None:
    result = recommend(CATALOG.model("llama-3.1-405b"), [CATALOG.gpu("h100-sxm")], SLO(5, 0.2),
                       Workload(1024, 128, 8), quantizations=("bf16",), max_gpus=16)
    assert result.options and result.options[0].deployment.num_nodes == 2
