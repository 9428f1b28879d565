"""vLLM's Prometheus metrics (same names, labels, buckets), fed by the simulated engine."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sluice.sim.engine import EngineCore, EngineStep

# Bucket bounds as in vLLM v1's PrometheusStatLogger (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FINISH_REASONS = ("stop", "length", "abort")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def one_two_five_buckets(limit: int) -> tuple[int, ...]:
    """1, 2, 5, 10, 20, 50, … up to `limit` (vLLM's token-count buckets)."""
    out: list[int] = []
    base = 1
    while base <= limit:
        out += [base * m for m in (1, 2, 5) if base * m <= limit]
        base *= 10
    return tuple(out)


class SimMetrics:
    """One registry per simulator, labelled `model_name` and `engine="0"` like a single vLLM engine."""

    def __init__(self, model_name: str, core: EngineCore, lag_s: Callable[[], float] = lambda: 0.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model_name", "engine")
        values = (model_name, "0")
        reg = self.registry

        def gauge(name: str, doc: str, read: object) -> None:
            Gauge(name, doc, labels, registry=reg).labels(*values).set_function(read)  # type: ignore[arg-type]

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, labels, registry=reg).labels(*values)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=reg).labels(*values)

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", lambda: core.num_running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", lambda: core.num_waiting)
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", lambda: core.kv_cache_usage)
        gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage (vLLM < 0.11 name).",
              lambda: core.kv_cache_usage)
        self.preemptions = counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          (*labels, "finished_reason"), registry=reg)
        self.success = {reason: success.labels(*values, reason) for reason in FINISH_REASONS}
        token_buckets = one_two_five_buckets(core.max_model_len)
        self.request_prompt_tokens = histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                               token_buckets)
        self.request_generation_tokens = histogram("vllm:request_generation_tokens",
                                                   "Number of generation tokens processed.", token_buckets)
        self.request_max_tokens = histogram("vllm:request_params_max_tokens",
                                            "Histogram of the max_tokens request parameter.", token_buckets)
        self.iteration_tokens = histogram("vllm:iteration_tokens_total",
                                          "Histogram of number of tokens per engine_step.", ITERATION_TOKEN_BUCKETS)
        self.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              TTFT_BUCKETS)
        self.itl = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             ITL_BUCKETS)
        self.tpot_legacy = histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in "
                                     "seconds. DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
                                     ITL_BUCKETS)
        self.request_tpot = histogram("vllm:request_time_per_output_token_seconds",
                                      "Histogram of time_per_output_token_seconds per request.", ITL_BUCKETS)
        self.e2e = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             REQUEST_LATENCY_BUCKETS)
        self.queue = histogram("vllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS)
        self.inference = histogram("vllm:request_inference_time_seconds",
                                   "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS)
        self.prefill = histogram("vllm:request_prefill_time_seconds",
                                 "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS)
        self.decode = histogram("vllm:request_decode_time_seconds",
                                "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS)
        info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                     ("block_size", "num_gpu_blocks", "engine"), registry=reg)
        info.labels(str(core.kv_cache.block_size), str(core.kv_cache.num_blocks), "0").set(1)
        Gauge("sluice_sim_engine_lag_seconds", "How late the simulator delivered its last step against the cost "
              "model (event loop overloaded); 0 when it keeps up.", ("model_name",),
              registry=reg).labels(model_name).set_function(lag_s)
        self.faults = Counter("sluice_sim_faults_injected", "Faults injected by the simulator, by kind.",
                              ("model_name", "kind"), registry=reg)
        self._model_name = model_name

    def observe_step(self, step: EngineStep) -> None:
        self.preemptions.inc(len(step.preempted))
        self.prompt_tokens.inc(step.num_prompt_tokens_done)
        self.generation_tokens.inc(len(step.tokens))
        self.iteration_tokens.observe(step.num_prefill_tokens + step.num_decode_seqs)
        for event in step.tokens:
            if event.index == 0:
                self.ttft.observe(event.latency_s)
            else:
                self.itl.observe(event.latency_s)
                self.tpot_legacy.observe(event.latency_s)
            timing = event.timing
            if timing is None:
                continue
            self.success[timing.finish_reason if timing.finish_reason in self.success else "stop"].inc()
            self.e2e.observe(timing.e2e_s)
            self.request_tpot.observe(timing.tpot_s)
            self.queue.observe(timing.queue_s)
            self.inference.observe(timing.inference_s)
            self.prefill.observe(timing.prefill_s)
            self.decode.observe(timing.decode_s)
            self.request_prompt_tokens.observe(timing.prompt_tokens)
            self.request_generation_tokens.observe(timing.output_tokens)

    def observe_admitted(self, max_tokens: int) -> None:
        self.request_max_tokens.observe(max_tokens)

    def observe_abort(self) -> None:
        self.success["abort"].inc()

    def observe_fault(self, kind: str) -> None:
        self.faults.labels(self._model_name, kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
