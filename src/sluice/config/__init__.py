"""The YAML config as pydantic models: `${ENV}` substitution and errors that name the bad key path.

Pure data: nothing here imports a runtime package or user code. Checks that need one (would a simulated vLLM
start, does a router's classifier import) run where config is composed: `sluice.gateway.startup`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from sluice.config._base import _Strict
from sluice.config.backends import (
    AnthropicBackendConfig,
    BackendConfig,
    EmbeddingBackendConfig,
    GGUFBackendConfig,
    OpenAIBackendConfig,
    SimBackendConfig,
    TransformersBackendConfig,
)
from sluice.config.cache import (
    CacheConfig,
    CacheEmbedderConfig,
    CacheWhen,
    ExactCacheConfig,
    SemanticCacheConfig,
    _check_cache_config,
    merge_cache_config,
)
from sluice.config.cost import (
    GPUCostConfig,
    KeysConfig,
    PricingConfig,
    StateConfig,
    TokenPriceConfig,
)
from sluice.config.routing import (
    BalancerName,
    CanaryConfig,
    CanaryThresholds,
    CircuitBreakerConfig,
    DifficultyRouterConfig,
    FailureKind,
    HealthCheckConfig,
    ModelConfig,
    RetryConfig,
    RolloutConfig,
    RolloutControlConfig,
    RoutingConfig,
    ShadowConfig,
    TargetConfig,
    is_sticky_key,
)
from sluice.config.safety import (
    CustomGuardConfig,
    GuardConfig,
    GuardPolicy,
    InjectionGuardConfig,
    KeywordGuardConfig,
    LlamaGuardCategory,
    LlamaGuardConfig,
    PIIGuardConfig,
    RegexGuardConfig,
    SafetyConfig,
    ToxicityGuardConfig,
)
from sluice.config.server import (
    ServerConfig,
    StoreConfig,
    TelemetryConfig,
    TracingConfig,
)
from sluice.config.structured import StructuredConfig, StructuredSupport, merge_structured_config
from sluice.config.tags import TagsConfig
from sluice.errors import ConfigError

_ROUTE_POLICY_KEYS = ("balancer", "retry", "circuit_breaker", "health_check", "fallbacks", "fallback_on")
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
    tags: TagsConfig = TagsConfig()  # request headers copied into the request log (docs/config.md#tags)
    safety: SafetyConfig = SafetyConfig()  # guards on prompts and answers (docs/safety.md)
    structured: StructuredConfig = StructuredConfig()  # answers to response_format (docs/structured-output.md)

    @model_validator(mode="after")
    def _guards_name_known_guards(self) -> SluiceConfig:
        for model_name, model in self.models.items():
            for index, guard in enumerate(model.guards):
                if guard not in self.safety.guards:
                    known = ", ".join(sorted(self.safety.guards)) or "none: define them under safety.guards"
                    raise ValueError(f"models.{model_name}.guards.{index}: unknown guard {guard!r} (defined: {known})")
                if guard in model.guards[:index]:
                    raise ValueError(f"models.{model_name}.guards.{index}: {guard!r} is listed twice")
        for guard_name, guard in self.safety.guards.items():
            if isinstance(guard, LlamaGuardConfig) and guard.model not in self.models:
                known = ", ".join(sorted(self.models)) or "none"
                raise ValueError(f"safety.guards.{guard_name}.model: unknown model {guard.model!r} (configured: "
                                 f"{known}); Llama Guard is called through one of the gateway's own models")
        return self

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
    def _routers_valid(self) -> SluiceConfig:
        for model_name, model in self.models.items():
            where = f"models.{model_name}"
            if model.router is None:
                if not model.targets:
                    raise ValueError(f"{where}.targets: at least one target is needed (or a `router`)")
                continue
            if model.targets or model.rollout.candidate or model.rollout.shadow:
                raise ValueError(f"{where}.router: a router model has no targets, candidates or shadows of its "
                                 "own; it sends each request to `easy` or `hard`")
            for key in _ROUTE_POLICY_KEYS:  # the chosen model's policy applies; these would be silently ignored
                if getattr(model, key) not in (None, []):
                    raise ValueError(f"{where}.{key}: a router model has no routing policy of its own; its requests "
                                     f"follow that of `{model.router.easy}` or `{model.router.hard}` (set it there)")
            for side in ("easy", "hard"):
                chosen = getattr(model.router, side)
                other = self.models.get(chosen)
                if other is None:
                    known = ", ".join(sorted(n for n, m in self.models.items() if m.router is None)) or "none"
                    raise ValueError(f"{where}.router.{side}: unknown model {chosen!r} (configured: {known})")
                if other.router is not None:
                    raise ValueError(f"{where}.router.{side}: {chosen!r} is itself a router model")
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


_GUARD_TYPES = ("keyword", "regex", "pii", "toxicity", "injection", "custom", "llama_guard")


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        # Drop the discriminator tag pydantic inserts into the path (e.g. "openai") so the path matches the file.
        loc = [str(part) for part in error["loc"]]
        if len(loc) >= 3 and loc[0] == "backends" and loc[2] in _BACKEND_TYPES:
            del loc[2]
        if len(loc) >= 4 and loc[:2] == ["safety", "guards"] and loc[3] in _GUARD_TYPES:
            del loc[3]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "union_tag_invalid":
            kind, types = ("guard", _GUARD_TYPES) if loc[:2] == ["safety", "guards"] else ("backend", _BACKEND_TYPES)
            message = f"unknown {kind} type {error['input'].get('type')!r}; expected one of {', '.join(types)}" \
                if isinstance(error.get("input"), dict) else f"unknown {kind} type; expected one of {', '.join(types)}"
        if error["type"] == "value_error":
            lines.append(f"  - {_value_error_line('.'.join(loc), message.removeprefix('Value error, '))}")
            continue
        lines.append(f"  - {'.'.join(loc) or '<root>'}: {message}")
    return "\n".join(lines)


def _value_error_line(where: str, message: str) -> str:
    """A validator's message under its key path: root validators and ones naming their full path keep theirs;
    a nested validator's relative path (`steps.0: ...`) is joined to where it ran; prose gets `where: `."""
    if not where or message.startswith(f"{where}:") or message.startswith(f"{where}."):
        return message
    if _RELATIVE_PATH.match(message):
        return f"{where}.{message}"
    return f"{where}: {message}"


_RELATIVE_PATH = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*: ")
_BACKEND_TYPES = ("openai", "anthropic", "gguf", "transformers", "sentence_transformers", "sim")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


__all__ = [
    "AnthropicBackendConfig",
    "BackendConfig",
    "BalancerName",
    "CacheConfig",
    "CacheEmbedderConfig",
    "CacheWhen",
    "CanaryConfig",
    "CanaryThresholds",
    "CircuitBreakerConfig",
    "CustomGuardConfig",
    "DifficultyRouterConfig",
    "EmbeddingBackendConfig",
    "ExactCacheConfig",
    "FailureKind",
    "GGUFBackendConfig",
    "GPUCostConfig",
    "GuardConfig",
    "GuardPolicy",
    "HealthCheckConfig",
    "InjectionGuardConfig",
    "KeysConfig",
    "KeywordGuardConfig",
    "LlamaGuardCategory",
    "LlamaGuardConfig",
    "ModelConfig",
    "OpenAIBackendConfig",
    "PIIGuardConfig",
    "PricingConfig",
    "RegexGuardConfig",
    "RetryConfig",
    "RolloutConfig",
    "RolloutControlConfig",
    "RoutingConfig",
    "SafetyConfig",
    "SemanticCacheConfig",
    "ServerConfig",
    "ShadowConfig",
    "SimBackendConfig",
    "SluiceConfig",
    "StateConfig",
    "StoreConfig",
    "StructuredConfig",
    "StructuredSupport",
    "TagsConfig",
    "TargetConfig",
    "TelemetryConfig",
    "TokenPriceConfig",
    "ToxicityGuardConfig",
    "TracingConfig",
    "TransformersBackendConfig",
    "default_config",
    "is_sticky_key",
    "load_config",
    "merge_cache_config",
    "merge_structured_config",
    "parse_config",
    "substitute_env",
]
