"""The YAML config as pydantic models: `${ENV}` substitution and errors that name the bad key path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class OpenAIBackendConfig(_BackendBase):
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
    max_concurrency: int | None = Field(1, gt=0)


class TransformersBackendConfig(_BackendBase):
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


# --- keys, budgets, limits, pricing (cost/) --------------------------------------------------------------


# --- caching (cache/) -------------------------------------------------------------------------------------


# --- routing and rollouts (routing/, rollout/) ------------------------------------------------------------


class TargetConfig(_Strict):
    backend: str
    model: str | None = None  # upstream model name; defaults to the public name
    weight: float = Field(100.0, ge=0)


class RolloutConfig(_Strict):
    """The initial deployment of a model; changed at run time with `sluice deploy` / the admin API."""

    strategy: Literal["canary", "blue_green"] = "canary"
    candidate: list[TargetConfig] = []  # replicas of the candidate version
    candidate_weight: float = Field(0.0, ge=0, le=100)  # % of traffic to the candidate (blue-green: 0 or 100)
    sticky_key: str = "user"  # user | header:<name> | random: what keeps a caller on one side
    shadow: list[TargetConfig] = []  # mirrored in the background, answers compared, never returned
    shadow_sample_rate: float = Field(1.0, ge=0, le=1)
    shadow_max_concurrency: int = Field(4, gt=0)


class ModelConfig(_Strict):
    targets: list[TargetConfig] = Field(min_length=1)  # replicas of the stable version, load-balanced
    description: str | None = None
    rollout: RolloutConfig = RolloutConfig()


class SluiceConfig(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    state: StateConfig = StateConfig()
    backends: dict[str, BackendConfig] = {}
    models: dict[str, ModelConfig] = {}

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
    "EmbeddingBackendConfig",
    "GGUFBackendConfig",
    "ModelConfig",
    "OpenAIBackendConfig",
    "RolloutConfig",
    "SimBackendConfig",
    "SluiceConfig",
    "StateConfig",
    "StoreConfig",
    "TargetConfig",
    "TransformersBackendConfig",
    "default_config",
    "load_config",
    "parse_config",
]
