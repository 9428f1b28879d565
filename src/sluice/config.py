"""The YAML config as pydantic models: `${ENV}` substitution and errors that name the bad key path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    master_key: str | None = None  # also read from SLUICE_MASTER_KEY
    graceful_shutdown_s: float = Field(30.0, ge=0)


class StoreConfig(_Strict):
    url: str = "sqlite:///sluice.db"
    log_bodies: Literal["full", "redacted", "none"] = "redacted"
    queue_size: int = Field(10_000, gt=0)
    batch_size: int = Field(500, gt=0)
    flush_interval_s: float = Field(0.25, gt=0)


class TracingConfig(_Strict):
    exporter: Literal["none", "console", "otlp", "memory"] = "none"
    endpoint: str | None = None  # OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces
    service_name: str = "sluicegate"
    sample_ratio: float = Field(1.0, ge=0, le=1)


class TelemetryConfig(_Strict):
    tracing: TracingConfig = TracingConfig()


class _BackendBase(_Strict):
    max_concurrency: int | None = Field(None, gt=0)  # requests beyond it wait (queued) for a slot


class _GPUHoursBackend(_BackendBase):
    """A backend that may run on GPUs you pay for by the hour: its cost is shared out over tokens (cost/)."""

    gpu: str | None = None  # catalog GPU id (`sluice plan gpus`), e.g. h100-sxm
    gpu_count: int = Field(1, ge=1)
    gpu_hour_usd: float | None = Field(None, gt=0)  # per GPU; default: the GPU catalog's cheapest on-demand price

    @model_validator(mode="after")
    def _gpu_count_needs_gpu(self) -> _GPUHoursBackend:
        if "gpu_count" in self.model_fields_set and self.gpu is None and self.gpu_hour_usd is None:
            raise ValueError("gpu_count is set but neither gpu nor gpu_hour_usd says what a GPU-hour costs")
        return self


class OpenAIBackendConfig(_GPUHoursBackend):
    """Any OpenAI-compatible server: vLLM, TGI, Ollama, llama.cpp server, OpenAI, Together, Groq, sluice sim."""

    type: Literal["openai"]
    base_url: str
    api_key: str | None = None
    headers: dict[str, str] = {}
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)  # longest silence allowed between bytes
    total_timeout_s: float = Field(600.0, gt=0)


class AnthropicBackendConfig(_BackendBase):
    type: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_key: str | None = None
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(4096, gt=0)  # the Messages API requires max_tokens
    headers: dict[str, str] = {}
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)
    total_timeout_s: float = Field(600.0, gt=0)


class GGUFBackendConfig(_BackendBase):
    """A GGUF file run in-process on CPU; `path: builtin:smollm2` is the bundled SmolLM2-135M-Instruct."""

    type: Literal["gguf"]
    path: str
    n_ctx: int = Field(2048, gt=0)
    n_threads: int | None = Field(None, gt=0)
    # llama.cpp's non-flash attention path gives wrong logits for a fresh context's first prompt on some
    # CPU builds (llama-cpp-python 0.3.36: SmolLM2 answered in French nonsense once, then correctly).
    flash_attn: bool = True
    max_concurrency: int | None = Field(1, gt=0)


class TransformersBackendConfig(_GPUHoursBackend):
    """A transformers model directory (config.json + weights), on CPU or a GPU."""

    type: Literal["transformers"]
    path: str
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_concurrency: int | None = Field(1, gt=0)


class EmbeddingBackendConfig(_BackendBase):
    """A sentence-transformers model; `path: builtin:all-minilm-l6-v2` is the bundled all-MiniLM-L6-v2."""

    type: Literal["sentence_transformers"]
    path: str
    device: str = "cpu"
    max_concurrency: int | None = Field(1, gt=0)


class SimBackendConfig(_BackendBase):
    """The inference simulator in-process: a model of `vllm serve MODEL` on a GPU (catalog ids)."""

    type: Literal["sim"]
    model: str  # catalog model id, e.g. llama-3.1-8b
    gpu: str  # catalog GPU id, e.g. h100-sxm
    tensor_parallel_size: int = Field(1, ge=1)
    quantization: str | None = None
    max_model_len: int | None = Field(None, gt=0)
    max_num_seqs: int | None = Field(None, gt=0)
    max_num_batched_tokens: int | None = Field(None, gt=0)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    seed: int = 0
    gpu_hour_usd: float | None = Field(None, gt=0)  # per GPU (x tensor_parallel_size); default: the catalog's price


BackendConfig = Annotated[
    OpenAIBackendConfig
    | AnthropicBackendConfig
    | GGUFBackendConfig
    | TransformersBackendConfig
    | EmbeddingBackendConfig
    | SimBackendConfig,
    Field(discriminator="type"),
]


# --- state (state/): shared counters, limits, budgets, cache entries ----------------------------------------


class StateConfig(_Strict):
    """Where replicas share fast state: `memory://` (one process) or `redis://host:6379/0` (scale-out)."""

    url: str = "memory://"
    key_prefix: str = Field("sluice:", min_length=1)  # every Redis key and channel starts with it
    timeout_s: float = Field(1.0, gt=0)  # Redis connect/read deadline; then keys.fail_open decides
    max_connections: int = Field(64, gt=0)  # Redis connection pool per replica; a burst beyond it waits

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url != "memory://" and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"state.url: expected memory:// or redis://host:6379/0 (rediss://, unix://), not {url!r}")
        return url


# --- keys, budgets, limits, pricing (cost/) --------------------------------------------------------------


class TokenPriceConfig(_Strict):
    """A price in USD per 1M tokens; cached input and cache writes cost the input price unless given."""

    input_usd_per_1m: float = Field(ge=0)
    output_usd_per_1m: float = Field(ge=0)
    cached_input_usd_per_1m: float | None = Field(None, ge=0)
    cache_write_usd_per_1m: float | None = Field(None, ge=0)


class GPUCostConfig(_Strict):
    """How a self-hosted backend's GPU-hours are shared out over the tokens it processes (docs/cost.md)."""

    window_s: float = Field(300.0, gt=0)  # trailing window the busy time and tokens are measured over
    prompt_token_weight: float = Field(0.25, ge=0)  # one prompt token costs this many output tokens' worth
    cached_token_weight: float = Field(0.025, ge=0)  # one prompt token served from the prefix cache


class PricingConfig(_Strict):
    """Cost of each request: API prices from the catalog (prices.yaml) and these overrides, or GPU-hours."""

    enabled: bool = True
    files: list[str] = []  # extra prices files (prices.yaml layout) layered over the built-in catalog
    models: dict[str, TokenPriceConfig] = {}  # by upstream model name, on any backend
    targets: dict[str, TokenPriceConfig] = {}  # "<backend>" or "<backend>:<upstream model>"; wins over all else
    default_max_output_tokens: int = Field(4096, gt=0)  # budget estimates when a request sets no max_tokens
    gpu: GPUCostConfig = GPUCostConfig()


class KeysConfig(_Strict):
    """Virtual keys (docs/keys.md): lookups cached per replica, budget reservations, state failures."""

    cache_ttl_s: float = Field(30.0, gt=0)  # a cached key is re-read in the background after this
    negative_cache_ttl_s: float = Field(2.0, ge=0)  # an unknown key id is remembered this long
    reservation_ttl_s: float = Field(900.0, gt=0)  # an unsettled budget reservation (replica died) expires
    last_used_flush_s: float = Field(30.0, gt=0)  # how often last_used_at is written to the store
    fail_open: bool = True  # state (Redis) unreachable: admit without limits (counted) instead of 503


# --- caching (cache/) -------------------------------------------------------------------------------------


CacheWhen = Literal["deterministic", "always"]  # deterministic: temperature 0 or a seed


class ExactCacheConfig(_Strict):
    """Answers to the same normalised request (docs/cache.md)."""

    enabled: bool = True
    when: CacheWhen = "deterministic"
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, gt=0)  # per replica in memory (LRU); Redis: TTL and its maxmemory policy


class CacheEmbedderConfig(_Strict):
    """What embeds prompts for the semantic cache: a configured backend, or all-MiniLM-L6-v2 in-process."""

    backend: str | None = None  # a backend serving embeddings; None: load `path` in-process
    model: str | None = None  # the model name sent to that backend (default: the backend's name)
    path: str = "builtin:all-minilm-l6-v2"
    device: str = "cpu"


class SemanticCacheConfig(_Strict):
    """Answers to paraphrases of a cached prompt, within one scope (docs/cache.md)."""

    enabled: bool = False
    when: CacheWhen = "always"
    threshold: float = Field(0.9, gt=0, le=1)  # cosine similarity; 0.9 ≈ precision 0.95+ with MiniLM
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(100_000, gt=0)  # all models together; least recently used evicted first
    max_user_turns: int = Field(1, ge=1)  # longer conversations are never answered from this cache
    embedder: CacheEmbedderConfig = CacheEmbedderConfig()


class CacheConfig(_Strict):
    """Response caching defaults; `models.<name>.cache` overrides keys one by one (nested keys too)."""

    namespace: Literal["key", "team", "global"] = "key"  # who may share an entry
    store_truncated: bool = False  # also keep answers cut at max_tokens (finish_reason "length")
    max_entry_bytes: int = Field(1_048_576, gt=0)  # larger answers are not cached
    exact: ExactCacheConfig = ExactCacheConfig()
    semantic: SemanticCacheConfig = SemanticCacheConfig()


_GATEWAY_WIDE_CACHE_KEYS = ("exact.max_entries", "semantic.max_entries", "semantic.embedder")


def merge_cache_config(base: CacheConfig, override: CacheConfig | None) -> CacheConfig:
    """`base` with the keys `override` sets (recursively), as a model's cache section reads."""
    return base if override is None else _merge_set_fields(base, override)


def _merge_set_fields(base: Any, override: Any) -> Any:
    updates: dict[str, Any] = {}
    for name in override.model_fields_set:
        value = getattr(override, name)
        current = getattr(base, name)
        updates[name] = _merge_set_fields(current, value) if isinstance(value, _Strict) else value
    return base.model_copy(update=updates)


def _set_paths(node: Any, prefix: str = "") -> set[str]:
    paths = set()
    for name in node.model_fields_set:
        value = getattr(node, name)
        paths.add(prefix + name)
        if isinstance(value, _Strict):
            paths |= _set_paths(value, f"{prefix}{name}.")
    return paths


def _check_cache_config(config: SluiceConfig) -> None:
    embedder = config.cache.semantic.embedder
    if embedder.backend is not None and embedder.backend not in config.backends:
        known = ", ".join(sorted(config.backends)) or "none"
        raise ValueError(f"cache.semantic.embedder.backend: unknown backend {embedder.backend!r} "
                         f"(configured: {known})")
    for model_name, model in config.models.items():
        if model.cache is None:
            continue
        for path in sorted(_set_paths(model.cache) & set(_GATEWAY_WIDE_CACHE_KEYS)):
            raise ValueError(f"models.{model_name}.cache.{path}: gateway-wide; set it in the top-level `cache`")


# --- routing and rollouts (routing/, rollout/) ------------------------------------------------------------


class TargetConfig(_Strict):
    backend: str
    model: str | None = None  # upstream model name; defaults to the public name
    weight: float = Field(100.0, ge=0)


# What went wrong on an upstream attempt, as retry_on / same_target_on / fallback_on name it (docs/routing.md).
FailureKind = Literal["connection", "5xx", "timeout", "429", "4xx"]
BalancerName = Literal["least_outstanding", "p2c_ewma", "weighted"]
_TRANSIENT: list[FailureKind] = ["connection", "5xx", "timeout", "429"]


class RetryConfig(_Strict):
    """Retries on a model's own replicas; only before the first byte of an answer reached the client."""

    max_attempts: int = Field(2, ge=1)  # tries in all, the first included (1: no retry)
    retry_on: list[FailureKind] = _TRANSIENT
    same_target_on: list[FailureKind] = ["connection", "429"]  # may retry the replica that failed (else another)
    backoff_initial_s: float = Field(0.1, ge=0)  # full jitter: uniform(0, min(max, initial * 2**retry))
    backoff_max_s: float = Field(2.0, ge=0)
    retry_after_max_s: float = Field(5.0, ge=0)  # a 429's retry-after is waited up to this; longer: no retry there
    per_try_timeout_s: float | None = Field(None, gt=0)  # to the first output chunk (streams) / whole answer
    total_timeout_s: float | None = Field(None, gt=0)  # same, from arrival, across retries and fallbacks


class CircuitBreakerConfig(_Strict):
    """Per target: stop sending to a replica that keeps failing; probe it again after a cooldown."""

    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)  # ... or this share of failures over the window
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(20, ge=1)  # attempts in the window before the rate counts
    cooldown_s: float = Field(15.0, gt=0)
    half_open_max_requests: int = Field(1, ge=1)  # probes at once after the cooldown


class HealthCheckConfig(_Strict):
    """Active checks (`backend.health()`); off unless `interval_s` is set."""

    interval_s: float | None = Field(None, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    unhealthy_after: int = Field(3, ge=1)
    healthy_after: int = Field(2, ge=1)


class RoutingConfig(_Strict):
    """Routing defaults for every model; `models.<name>` may override any key (nested keys one by one)."""

    balancer: BalancerName = "least_outstanding"
    retry: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    health_check: HealthCheckConfig = HealthCheckConfig()
    fallback_on: list[FailureKind] = _TRANSIENT


class RolloutConfig(_Strict):
    """The initial deployment of a model; changed at run time with `sluice deploy` / the admin API."""

    strategy: Literal["canary", "blue_green"] = "canary"
    candidate: list[TargetConfig] = []  # replicas of the candidate version
    candidate_weight: float = Field(0.0, ge=0, le=100)  # % of traffic to the candidate (blue-green: 0 or 100)
    sticky_key: str = "user"  # user | header:<name> | random: what keeps a caller on one side
    shadow: list[TargetConfig] = []  # mirrored in the background, answers compared, never returned
    shadow_sample_rate: float = Field(1.0, ge=0, le=1)
    shadow_max_concurrency: int = Field(4, gt=0)


class ShadowConfig(_Strict):
    """Shadow mode (rollout/shadow.py): the deadline of a mirrored call and the batched writer of its pairs."""

    timeout_s: float = Field(30.0, gt=0)  # a shadow call still running after this is recorded as a timeout
    queue_size: int = Field(1000, gt=0)  # pairs waiting to be written; beyond it new pairs are dropped (counted)
    batch_size: int = Field(100, gt=0)
    flush_interval_s: float = Field(1.0, gt=0)


class CanaryThresholds(_Strict):
    """When a canary fails (docs/rollouts.md): a check fails only when significant AND past its margin."""

    alpha: float = Field(0.05, gt=0, lt=1)  # significance level of every one-sided test
    max_error_rate_increase: float = Field(0.01, ge=0, le=1)  # absolute: candidate − stable error rate
    max_ttft_p99_increase: float = Field(0.25, ge=0)  # relative: 0.25 lets the candidate's P99 be 25 % higher
    max_tpot_p99_increase: float = Field(0.25, ge=0)
    max_e2e_p99_increase: float = Field(0.25, ge=0)
    max_cost_increase: float = Field(0.10, ge=0)  # relative, mean cost per request (when both sides are priced)


class CanaryConfig(_Strict):
    """Defaults of a progressive canary; `sluice deploy start-canary` / the admin API may override each key."""

    steps: list[float] = Field([5.0, 25.0, 50.0, 100.0], min_length=1)  # candidate weight % per step
    interval_s: float = Field(300.0, gt=0)  # each step's analysis window
    min_requests: int = Field(50, ge=1)  # per side and window; fewer: inconclusive
    max_extensions: int = Field(3, ge=0)  # inconclusive windows a step may add before on_exhausted
    on_exhausted: Literal["rollback", "advance", "hold"] = "rollback"
    log_grace_s: float = Field(1.0, ge=0)  # wait after a window ends for every replica's log writer to flush
    thresholds: CanaryThresholds = CanaryThresholds()
    webhooks: list[str] = []  # URLs that get a JSON POST on each canary event

    @model_validator(mode="after")
    def _steps_increase(self) -> CanaryConfig:
        for index, step in enumerate(self.steps):
            if not 0 < step <= 100:
                raise ValueError(f"steps.{index}: a step is a weight in (0, 100], not {step}")
            if index and step <= self.steps[index - 1]:
                raise ValueError(f"steps.{index}: steps must increase ({self.steps[index - 1]} -> {step})")
        return self


class RolloutControlConfig(_Strict):
    """The rollout control plane (rollout/): how replicas pick up changes, and canary defaults."""

    poll_interval_s: float = Field(1.0, gt=0)  # how often a replica checks the store for deployment changes
    lease_s: float = Field(10.0, gt=0)  # the canary driver's lease; another replica takes over after it expires
    canary: CanaryConfig = CanaryConfig()


class ModelConfig(_Strict):
    targets: list[TargetConfig] = Field(min_length=1)  # replicas of the stable version, load-balanced
    description: str | None = None
    rollout: RolloutConfig = RolloutConfig()
    # Routing policy (routing/); unset keys take `routing.*`.
    balancer: BalancerName | None = None
    retry: RetryConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    health_check: HealthCheckConfig | None = None
    fallbacks: list[str] = []  # other public models, tried in order when this one fails (fallback_on)
    fallback_on: list[FailureKind] | None = None
    cache: CacheConfig | None = None  # response caching; unset keys take the top-level `cache`


class SluiceConfig(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    state: StateConfig = StateConfig()
    backends: dict[str, BackendConfig] = {}
    models: dict[str, ModelConfig] = {}
    routing: RoutingConfig = RoutingConfig()  # defaults of every model's routing policy
    shadow: ShadowConfig = ShadowConfig()  # shadow mode's call deadline and pair writer
    rollout: RolloutControlConfig = RolloutControlConfig()  # deployment sync, canary defaults
    pricing: PricingConfig = PricingConfig()
    keys: KeysConfig = KeysConfig()
    cache: CacheConfig = CacheConfig()  # response caching defaults (docs/cache.md)

    @model_validator(mode="after")
    def _fallbacks_name_known_models(self) -> SluiceConfig:
        for model_name, model in self.models.items():
            for index, fallback in enumerate(model.fallbacks):
                where = f"models.{model_name}.fallbacks.{index}"
                if fallback == model_name:
                    raise ValueError(f"{where}: a model cannot fall back to itself")
                if fallback not in self.models:
                    known = ", ".join(sorted(self.models)) or "none"
                    raise ValueError(f"{where}: unknown model {fallback!r} (configured: {known})")
                if fallback in model.fallbacks[:index]:
                    raise ValueError(f"{where}: {fallback!r} is listed twice")
        return self

    @model_validator(mode="after")
    def _targets_name_known_backends(self) -> SluiceConfig:
        for model_name, model in self.models.items():
            groups = {"targets": model.targets, "rollout.candidate": model.rollout.candidate,
                      "rollout.shadow": model.rollout.shadow}
            for group, targets in groups.items():
                for index, target in enumerate(targets):
                    if target.backend not in self.backends:
                        known = ", ".join(sorted(self.backends)) or "none"
                        raise ValueError(
                            f"models.{model_name}.{group}.{index}.backend: unknown backend "
                            f"{target.backend!r} (configured: {known})"
                        )
        return self

    @model_validator(mode="after")
    def _cache_config_valid(self) -> SluiceConfig:
        _check_cache_config(self)
        return self

    @model_validator(mode="after")
    def _pricing_targets_name_known_backends(self) -> SluiceConfig:
        for key in self.pricing.targets:
            backend = key.split(":", 1)[0]
            if backend not in self.backends:
                known = ", ".join(sorted(self.backends)) or "none"
                raise ValueError(f"pricing.targets.{key}: unknown backend {backend!r} (configured: {known}); "
                                 "keys are <backend> or <backend>:<upstream model>")
        return self


def default_config() -> SluiceConfig:
    """The embedded default: no keys, no GPU, no network; a real small model and embedder on CPU."""
    return SluiceConfig.model_validate(
        {
            "backends": {
                "smollm2": {"type": "gguf", "path": "builtin:smollm2"},
                "minilm": {"type": "sentence_transformers", "path": "builtin:all-minilm-l6-v2"},
                "sim-h100": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 8192},
                "sim-l4": {"type": "sim", "model": "llama-3.1-8b", "gpu": "l4", "quantization": "fp8",
                           "max_model_len": 8192},
            },
            "models": {
                "smollm2-135m-instruct": {"targets": [{"backend": "smollm2"}]},
                "all-minilm-l6-v2": {"targets": [{"backend": "minilm"}]},
                "llama-3.1-8b-sim-h100": {"targets": [{"backend": "sim-h100", "model": "llama-3.1-8b"}],
                                          "description": "SIMULATED: Llama-3.1-8B on one H100 (no GPU used)"},
                "llama-3.1-8b-sim-l4": {"targets": [{"backend": "sim-l4", "model": "llama-3.1-8b"}],
                                        "description": "SIMULATED: Llama-3.1-8B FP8 on one L4 (no GPU used)"},
            },
        }
    )


def substitute_env(node: Any, path: str = "", environ: dict[str, str] | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(node, dict):
        return {key: substitute_env(value, _join(path, str(key)), env) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute_env(value, _join(path, str(i)), env) for i, value in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if default is not None and not value:  # `:-` as in the shell: unset or empty takes the default
            return default
        if value is not None:
            return value
        raise ConfigError(f"{path or '<root>'}: environment variable ${{{name}}} is not set")

    return _ENV_PATTERN.sub(replace, node)


def parse_config(data: Any, source: str = "<config>") -> SluiceConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    data = substitute_env(data)
    try:
        return SluiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid config\n" + _format_errors(exc)) from None


def load_config(path: str | Path | None) -> SluiceConfig:
    """Load and validate a config file; `None` gives the embedded default."""
    if path is None:
        return default_config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a UTF-8 text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_config(data, str(file))


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        # Drop the discriminator tag pydantic inserts into the path (e.g. "openai") so the path matches the file.
        loc = [str(part) for part in error["loc"]]
        if len(loc) >= 3 and loc[0] == "backends" and loc[2] in _BACKEND_TYPES:
            del loc[2]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "union_tag_invalid":
            message = f"unknown backend type; expected one of {', '.join(_BACKEND_TYPES)}"
        # Validators that already name their path ("models.x...: ...") keep it.
        if error["type"] == "value_error" and ": " in message:
            lines.append(f"  - {message.removeprefix('Value error, ')}")
            continue
        lines.append(f"  - {'.'.join(loc) or '<root>'}: {message}")
    return "\n".join(lines)


_BACKEND_TYPES = ("openai", "anthropic", "gguf", "transformers", "sentence_transformers", "sim")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


__all__ = [
    "AnthropicBackendConfig",
    "BackendConfig",
    "CacheConfig",
    "CanaryConfig",
    "CanaryThresholds",
    "CircuitBreakerConfig",
    "EmbeddingBackendConfig",
    "FailureKind",
    "GGUFBackendConfig",
    "GPUCostConfig",
    "HealthCheckConfig",
    "KeysConfig",
    "ModelConfig",
    "OpenAIBackendConfig",
    "PricingConfig",
    "RetryConfig",
    "RolloutConfig",
    "RolloutControlConfig",
    "RoutingConfig",
    "ShadowConfig",
    "SimBackendConfig",
    "SluiceConfig",
    "StateConfig",
    "StoreConfig",
    "TargetConfig",
    "TokenPriceConfig",
    "TransformersBackendConfig",
    "default_config",
    "load_config",
    "merge_cache_config",
    "parse_config",
]
