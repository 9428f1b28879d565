"""Metrics follow vLLM `bench serve` definitions exactly, on hand-built timelines."""

from __future__ import annotations

import pytest

from sluice.loadtest.metrics import RequestResult, count_good, summarize, to_result_dict, tpot_s

# Two successes and one failure over a 2-second run.
A = RequestResult(success=True, prompt_tokens=10, output_tokens=5, ttft_s=0.1, itl_s=(0.1, 0.1, 0.2, 0.1), e2e_s=0.6)
B = RequestResult(success=True, prompt_tokens=20, output_tokens=1, ttft_s=0.3, itl_s=(), e2e_s=0.3)
C = RequestResult(success=False, prompt_tokens=7, error="http_500")


def test_tpot_is_latency_after_first_token_over_remaining_tokens() -> None:
    assert tpot_s(A) == pytest.approx((0.6 - 0.1) / 4)
    assert tpot_s(B) is None  # one output token: no TPOT


def test_throughputs_count_only_completed_requests_over_wall_duration() -> None:
    s = summarize([A, B, C], 2.0)
    assert (s.completed, s.failed, s.num_requests) == (2, 1, 3)
    assert s.total_input_tokens == 30 and s.total_output_tokens == 6
    assert s.request_throughput == pytest.approx(1.0)
    assert s.output_throughput == pytest.approx(3.0)
    assert s.total_token_throughput == pytest.approx(18.0)
    assert s.achieved_concurrency == pytest.approx(0.45)
    assert s.errors_by_class == {"http_500": 1}


def test_latency_distributions_use_numpy_definitions() -> None:
    s = summarize([A, B, C], 2.0, percentiles=(50, 99))
    assert s.ttft.mean_ms == pytest.approx(200.0)
    assert s.ttft.std_ms == pytest.approx(100.0)  # population std, as np.std
    assert s.ttft.percentiles_ms[1] == (99.0, pytest.approx(298.0))  # linear interpolation
    assert s.tpot.mean_ms == pytest.approx(125.0)  # B has no TPOT
    assert s.itl.mean_ms == pytest.approx(125.0)  # gaps pooled: 0.1, 0.1, 0.2, 0.1
    assert s.itl.median_ms == pytest.approx(100.0)
    assert s.e2el.median_ms == pytest.approx(450.0)


def test_no_completed_requests_gives_zero_latencies() -> None:
    s = summarize([C], 1.0)
    assert s.completed == 0 and s.ttft.mean_ms == 0.0 and s.ttft.percentiles_ms == ((99.0, 0.0),)


def test_goodput_counts_requests_meeting_every_slo_inclusive() -> None:
    assert count_good([A, B, C], {"ttft": 100}) == 1  # A's TTFT is exactly 100 ms
    assert count_good([A, B, C], {"tpot": 100}) == 1  # B counts TPOT as 0
    assert count_good([A, B, C], {"ttft": 300, "e2el": 500}) == 1
    assert summarize([A, B, C], 2.0, goodput_slos_ms={"ttft": 1000}).request_goodput == pytest.approx(1.0)
    assert summarize([A], 1.0).request_goodput is None
    with pytest.raises(ValueError):
        count_good([A], {"latency": 1})


def test_result_dict_uses_vllm_field_names() -> None:
    d = to_result_dict(summarize([A, B, C], 2.0, percentiles=(99, 99.9)))
    for key in ("completed", "request_throughput", "output_throughput", "total_token_throughput", "mean_ttft_ms",
                "median_ttft_ms", "p99_ttft_ms", "p99.9_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "p99_e2el_ms"):
        assert key in d
