"""Gateway Prometheus metrics: series names, what one request record adds, and bounded label values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sluice.errors import ErrorClass
from sluice.records import RequestRecord
from sluice.telemetry.metrics import UNROUTED, GatewayMetrics

HISTOGRAMS = {
    "sluice_time_to_first_token_seconds", "sluice_time_per_output_token_seconds",
    "sluice_inter_token_latency_seconds", "sluice_e2e_request_latency_seconds", "sluice_gateway_overhead_seconds",
    "sluice_request_queue_seconds", "sluice_stage_seconds",
}


def record(**overrides: Any) -> RequestRecord:
    values: dict[str, Any] = dict(
        request_id="req-1", created_at=1_700_000_000.0, endpoint="chat", model="chat", target="vllm-a",
        backend_type="openai", upstream_model="meta-llama/Llama-3.1-8B-Instruct", stream=True, status_code=200,
        prompt_tokens=12, completion_tokens=5, ttft_s=0.2, tpot_s=0.05, itl_s=(0.04, 0.05, 0.06, 0.05),
        e2e_s=0.4, queue_s=0.0, upstream_s=0.39, overhead_s=0.001,
    )
    values.update(overrides)
    return RequestRecord(**values)


def samples(metrics: GatewayMetrics) -> list[Sample]:
    text = metrics.exposition().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples(metrics) if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
    return found[0] if found else None


def bucket_bounds(metrics: GatewayMetrics, name: str) -> list[float]:
    return sorted({float(s.labels["le"]) for s in samples(metrics) if s.name == f"{name}_bucket"})


# --- names follow the Prometheus conventions --------------------------------------------------------

def test_latencies_are_histograms_in_seconds_and_counts_are_counters_ending_in_total() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(error_class=ErrorClass.SERVER.value))
    families = {family.name: family for family in text_string_to_metric_families(metrics.exposition().decode())}

    assert {name for name, family in families.items() if family.type == "histogram"} == HISTOGRAMS
    assert all(name.endswith("_seconds") for name in HISTOGRAMS)
    for name, family in families.items():
        assert name.startswith("sluice_")
        if family.type == "counter":
            assert family.samples, name
            assert all(sample.name == f"{name}_total" for sample in family.samples), name
    assert {"sluice_requests", "sluice_request_errors", "sluice_prompt_tokens", "sluice_completion_tokens"} <= {
        name for name, family in families.items() if family.type == "counter"}
    assert families["sluice_requests_queued"].type == "gauge"
    assert families["sluice_requests_in_flight"].type == "gauge"


def test_no_created_series_are_exposed() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record())

    assert not [s.name for s in samples(metrics) if s.name.endswith("_created")]
    assert b"_created" not in metrics.exposition()


# --- what one record adds ----------------------------------------------------------------------------

def test_a_streamed_request_is_observed_once_in_each_latency_histogram() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record())

    labels = {"model": "chat", "target": "vllm-a"}
    for name in ("sluice_time_to_first_token_seconds", "sluice_time_per_output_token_seconds",
                 "sluice_e2e_request_latency_seconds", "sluice_gateway_overhead_seconds",
                 "sluice_request_queue_seconds"):
        assert value(metrics, f"{name}_count", **labels) == 1.0, name
    assert value(metrics, "sluice_time_to_first_token_seconds_sum", **labels) == pytest.approx(0.2)
    assert value(metrics, "sluice_e2e_request_latency_seconds_sum", **labels) == pytest.approx(0.4)


def test_each_inter_token_gap_is_one_observation() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(itl_s=(0.04, 0.05, 0.06, 0.05)))
    metrics.observe(record(itl_s=(0.1, 0.2)))

    labels = {"model": "chat", "target": "vllm-a"}
    assert value(metrics, "sluice_inter_token_latency_seconds_count", **labels) == 6.0
    assert value(metrics, "sluice_inter_token_latency_seconds_sum", **labels) == pytest.approx(0.5)
    assert value(metrics, "sluice_inter_token_latency_seconds_bucket", le="0.05", **labels) == 3.0


def test_a_non_streamed_request_has_no_ttft_tpot_or_itl_observation_but_an_e2e() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(stream=False, ttft_s=None, tpot_s=None, itl_s=()))

    labels = {"model": "chat", "target": "vllm-a"}
    assert value(metrics, "sluice_time_to_first_token_seconds_count", **labels) == 0.0
    assert value(metrics, "sluice_time_per_output_token_seconds_count", **labels) == 0.0
    assert value(metrics, "sluice_inter_token_latency_seconds_count", **labels) == 0.0
    assert value(metrics, "sluice_e2e_request_latency_seconds_count", **labels) == 1.0


def test_tokens_are_summed_per_model_and_target() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(prompt_tokens=12, completion_tokens=5))
    metrics.observe(record(prompt_tokens=8, completion_tokens=None))
    metrics.observe(record(target="vllm-b", prompt_tokens=100, completion_tokens=1))

    assert value(metrics, "sluice_prompt_tokens_total", model="chat", target="vllm-a") == 20.0
    assert value(metrics, "sluice_completion_tokens_total", model="chat", target="vllm-a") == 5.0
    assert value(metrics, "sluice_prompt_tokens_total", model="chat", target="vllm-b") == 100.0


@pytest.mark.parametrize(("status", "status_class"), [(200, "2xx"), (400, "4xx"), (404, "4xx"), (429, "4xx"),
                                                      (499, "4xx"), (502, "5xx"), (504, "5xx")])
def test_requests_are_counted_by_status_class(status: int, status_class: str) -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(status_code=status))

    assert value(metrics, "sluice_requests_total", endpoint="chat", model="chat", status_class=status_class) == 1.0
    assert [s.labels["status_class"] for s in samples(metrics) if s.name == "sluice_requests_total"] == [status_class]


def test_errors_are_counted_by_error_class_and_successes_are_not() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record())
    metrics.observe(record(status_code=504, error_class=ErrorClass.TIMEOUT.value))
    metrics.observe(record(status_code=504, error_class=ErrorClass.TIMEOUT.value))
    metrics.observe(record(status_code=200, error_class=ErrorClass.SERVER.value))  # a stream that broke mid-way

    assert value(metrics, "sluice_request_errors_total", model="chat", error_class="timeout") == 2.0
    assert value(metrics, "sluice_request_errors_total", model="chat", error_class="5xx") == 1.0
    assert value(metrics, "sluice_requests_total", endpoint="chat", model="chat", status_class="2xx") == 2.0
    assert sum(s.value for s in samples(metrics) if s.name == "sluice_request_errors_total") == 3.0


# --- the cardinality guard -----------------------------------------------------------------------------

def test_unrouted_requests_share_one_label_whatever_model_the_client_sent() -> None:
    metrics = GatewayMetrics()
    for model in ("gpt-5", "no-such-model", "", "x" * 300):
        metrics.observe(record(model=model, target=None, backend_type=None, upstream_model=None, status_code=404,
                               error_class=ErrorClass.CLIENT.value, ttft_s=None, tpot_s=None, itl_s=(),
                               prompt_tokens=None, completion_tokens=None))

    models = {s.labels["model"] for s in samples(metrics) if "model" in s.labels}
    assert models == {UNROUTED} == {"_unrouted"}
    assert value(metrics, "sluice_requests_total", endpoint="chat", model=UNROUTED, status_class="4xx") == 4.0
    assert value(metrics, "sluice_request_errors_total", model=UNROUTED, error_class="4xx") == 4.0
    assert value(metrics, "sluice_e2e_request_latency_seconds_count", model=UNROUTED, target="") == 4.0


def test_routed_requests_keep_their_public_model_name() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(model="chat"))
    metrics.observe(record(model="claude-haiku", target="claude"))

    models = {s.labels["model"] for s in samples(metrics) if s.name == "sluice_requests_total"}
    assert models == {"chat", "claude-haiku"}


# --- buckets -----------------------------------------------------------------------------------------

def test_ttft_buckets_span_5_ms_to_at_least_60_s() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record())

    bounds = bucket_bounds(metrics, "sluice_time_to_first_token_seconds")
    assert bounds[0] == 0.005
    assert bounds[-1] == math.inf
    assert bounds[-2] >= 60.0


def test_e2e_buckets_reach_at_least_600_s() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record())

    bounds = bucket_bounds(metrics, "sluice_e2e_request_latency_seconds")
    assert bounds[-1] == math.inf
    assert bounds[-2] >= 600.0
    assert bounds[0] <= 0.01


def test_a_ten_minute_answer_lands_in_a_finite_e2e_bucket() -> None:
    metrics = GatewayMetrics()
    metrics.observe(record(e2e_s=599.0))

    labels = {"model": "chat", "target": "vllm-a"}
    assert value(metrics, "sluice_e2e_request_latency_seconds_bucket", le="300.0", **labels) == 0.0
    assert value(metrics, "sluice_e2e_request_latency_seconds_bucket", le="600.0", **labels) == 1.0


def test_two_gateways_do_not_share_series() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe(record())

    assert value(first, "sluice_requests_total", endpoint="chat", model="chat", status_class="2xx") == 1.0
    assert value(second, "sluice_requests_total", endpoint="chat", model="chat", status_class="2xx") is None
