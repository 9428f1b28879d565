"""Prometheus metrics for the gateway; names and meanings are documented in docs/metrics.md."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from sluice.records import RequestRecord
from sluice.telemetry.stage_metrics import StageMetrics

disable_created_metrics()  # the `_created` series double the exposition size and no dashboard uses them

# Latency buckets span ms to minutes: LLM first tokens take 10 ms–30 s, whole answers up to 10 min.
TTFT_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                  5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
TOKEN_GAP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
                       0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
E2E_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                 90.0, 120.0, 180.0, 300.0, 600.0)
OVERHEAD_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
                      0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
QUEUE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


UNROUTED = "_unrouted"


class GatewayMetrics:
    """All gateway series in one registry; children are cached so an observation is a dict lookup."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        model_target = ["model", "target"]
        self.stages = StageMetrics(r)  # sluice_stage_seconds{stage}
        self.ttft = Histogram("sluice_time_to_first_token_seconds",
                              "Arrival of the request to the first output chunk (streaming only).",
                              model_target, buckets=TTFT_BUCKETS_S, registry=r)
        self.tpot = Histogram("sluice_time_per_output_token_seconds",
                              "(E2E - TTFT) / (completion tokens - 1) per streamed request.",
                              model_target, buckets=TOKEN_GAP_BUCKETS_S, registry=r)
        self.itl = Histogram("sluice_inter_token_latency_seconds",
                             "Gap between consecutive output chunks of a stream.",
                             model_target, buckets=TOKEN_GAP_BUCKETS_S, registry=r)
        self.e2e = Histogram("sluice_e2e_request_latency_seconds",
                             "Arrival of the request to the last byte of the answer.",
                             model_target, buckets=E2E_BUCKETS_S, registry=r)
        self.overhead = Histogram("sluice_gateway_overhead_seconds",
                                  "Gateway's own time: E2E minus upstream wait minus queue wait.",
                                  model_target, buckets=OVERHEAD_BUCKETS_S, registry=r)
        self.queue_time = Histogram("sluice_request_queue_seconds",
                                    "Time a request waited for a backend concurrency slot.",
                                    model_target, buckets=QUEUE_BUCKETS_S, registry=r)
        self.requests = Counter("sluice_requests", "Finished requests by endpoint, model and status class.",
                                ["endpoint", "model", "status_class"], registry=r)
        self.errors = Counter("sluice_request_errors", "Failed requests by error class.",
                              ["model", "error_class"], registry=r)
        self.prompt_tokens = Counter("sluice_prompt_tokens", "Prompt (input) tokens processed.",
                                     model_target, registry=r)
        self.completion_tokens = Counter("sluice_completion_tokens", "Completion (output) tokens generated.",
                                         model_target, registry=r)
        self.in_flight = Gauge("sluice_requests_in_flight", "Requests being handled now.", ["model"],
                               registry=r)
        self.queued = Gauge("sluice_requests_queued", "Requests waiting for a backend slot (scale on this).",
                            ["target"], registry=r)
        self.log_queue_depth = Gauge("sluice_request_log_queue_depth",
                                     "Request-log records waiting to be written.", registry=r)
        self.log_queue_full = Counter("sluice_request_log_queue_full",
                                      "Times the request-log queue was full (records waited, none lost).",
                                      registry=r)
        self.log_rows = Counter("sluice_request_log_rows_written", "Request-log rows written to the store.",
                                registry=r)
        self.log_rows_dropped = Counter("sluice_request_log_rows_dropped",
                                        "Request-log rows lost (store down longer than the overflow holds).",
                                        registry=r)
        self.log_write_errors = Counter("sluice_request_log_write_errors",
                                        "Failed request-log batch writes (retried).", registry=r)
        self._children: dict[tuple[str, str], tuple] = {}
        self._finished: dict[tuple[str, str, int], Counter] = {}  # (endpoint, model, status // 100) -> child

    def observe(self, record: RequestRecord) -> None:
        # Unrouted requests (unknown model, bad body) share one label value: client input must not
        # create series.
        model = record.model if record.target is not None else UNROUTED
        target = record.target or ""
        key = (model, target)
        children = self._children.get(key)
        if children is None:
            children = tuple(metric.labels(model, target) for metric in (
                self.ttft, self.tpot, self.itl, self.e2e, self.overhead, self.queue_time,
                self.prompt_tokens, self.completion_tokens))
            self._children[key] = children
        ttft, tpot, itl, e2e, overhead, queue_time, prompt_tokens, completion_tokens = children
        if record.ttft_s is not None:
            ttft.observe(record.ttft_s)
        if record.tpot_s is not None:
            tpot.observe(record.tpot_s)
        for gap in record.itl_s:
            itl.observe(gap)
        if record.e2e_s is not None:
            e2e.observe(record.e2e_s)
        overhead.observe(record.overhead_s)
        queue_time.observe(record.queue_s)
        if record.prompt_tokens:
            prompt_tokens.inc(record.prompt_tokens)
        if record.completion_tokens:
            completion_tokens.inc(record.completion_tokens)
        counted = (record.endpoint, model, record.status_code // 100)
        finished = self._finished.get(counted)
        if finished is None:  # labels() takes a lock and builds a key: 1.3 µs, against 0.4 µs for this lookup
            finished = self._finished[counted] = self.requests.labels(record.endpoint, model,
                                                                      f"{record.status_code // 100}xx")
        finished.inc()
        if record.error_class is not None:
            self.errors.labels(model, record.error_class).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
