"""Backend sections: one pydantic model per backend type, discriminated by `type`."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from sluice.config._base import _Strict
from sluice.config.structured import StructuredSupport


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


def _check_base_url(base_url: str, headers: dict[str, str], authorization_key: str | None) -> None:
    """An http(s) URL; `user:password@` in it is sent as basic auth, so nothing else may set Authorization.
    Messages never quote the URL: it may hold credentials."""
    try:
        parts = urlsplit(base_url)
        has_credentials = parts.username is not None or parts.password is not None
        port_ok = parts.port is None or parts.port > 0  # reading .port checks it is a number in range
    except ValueError:
        raise ValueError("base_url: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError("base_url: expected an http:// or https:// URL with a host")
    if not has_credentials:
        return
    if authorization_key is not None:
        raise ValueError(f"base_url: has credentials (user:password@) and {authorization_key} is set too; "
                         "give one (the URL's are sent as basic auth)")
    if any(name.lower() == "authorization" for name in headers):
        raise ValueError("base_url: has credentials (user:password@) and headers set Authorization too; give one")


class OpenAIBackendConfig(_GPUHoursBackend):
    """Any OpenAI-compatible server: vLLM, TGI, Ollama, llama.cpp server, OpenAI, Together, Groq, sluice sim."""

    type: Literal["openai"]
    base_url: str
    api_key: str | None = None
    headers: dict[str, str] = {}
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)  # longest silence allowed between bytes
    total_timeout_s: float = Field(600.0, gt=0)
    # What it enforces of response_format (docs/structured-output.md#backends); auto: detected when it starts.
    structured_output: StructuredSupport = "auto"

    @model_validator(mode="after")
    def _one_authorization(self) -> OpenAIBackendConfig:
        _check_base_url(self.base_url, self.headers, "api_key" if self.api_key else None)
        return self


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

    @model_validator(mode="after")
    def _one_authorization(self) -> AnthropicBackendConfig:
        _check_base_url(self.base_url, self.headers, None)  # its api_key goes in x-api-key
        return self


class _LocalRuntime(_BackendBase):
    """A model run by the gateway itself. `process` (default): in a supervised worker process, so a native crash
    is a 503 and a restart; `thread`: in the gateway's own process (no hop, but a crash there kills the gateway)."""

    isolation: Literal["process", "thread"] = "process"


class GGUFBackendConfig(_LocalRuntime):
    """A GGUF file run in-process on CPU; `path: builtin:smollm2` is the bundled SmolLM2-135M-Instruct."""

    type: Literal["gguf"]
    path: str
    n_ctx: int = Field(2048, gt=0)
    n_threads: int | None = Field(None, gt=0)
    flash_attn: bool = True  # llama.cpp's fused attention path (docs/local-models.md#flash_attn)
    max_concurrency: int | None = Field(1, gt=0)
    # json_schema: a JSON response_format is decoded under a grammar (llguidance, docs/structured-local.md);
    # none: the gateway writes the schema into the prompt and validates, repairs, re-asks instead.
    structured_output: Literal["json_schema", "none"] = "json_schema"
    lora: str | None = None  # a GGUF LoRA adapter file applied to the model (docs/local-models.md#lora-adapters)
    lora_scale: float = 1.0  # the adapter's strength: 0 leaves the base model's output

    @model_validator(mode="after")
    def _lora_scale_needs_lora(self) -> GGUFBackendConfig:
        _needs("lora", ("lora_scale",), self)
        return self


class TransformersBackendConfig(_GPUHoursBackend, _LocalRuntime):
    """A transformers model directory (config.json + weights), on CPU or a GPU."""

    type: Literal["transformers"]
    path: str
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_concurrency: int | None = Field(1, gt=0)
    adapter: str | None = None  # a PEFT LoRA adapter folder applied to the model (docs/local-models.md#lora-adapters)
    adapter_merge: bool = True  # folded into the base weights at load: decodes at the base model's speed
    # Refuse an adapter whose adapter_config.json names another base than `path`; false: the same weights, renamed.
    adapter_base_check: bool = True

    @model_validator(mode="after")
    def _adapter_options_need_adapter(self) -> TransformersBackendConfig:
        _needs("adapter", ("adapter_merge", "adapter_base_check"), self)
        return self


def _needs(key: str, options: tuple[str, ...], section: _Strict) -> None:
    """Options that only qualify `key` are an error without it (a typo'd or forgotten key, not a silent no-op) —
    unless they hold their default, as a config printed whole (`sluice config default`) writes every option."""
    if getattr(section, key) is None:
        fields = type(section).model_fields
        given = [option for option in options if option in section.model_fields_set
                 and getattr(section, option) != fields[option].default]
        if given:
            raise ValueError(f"{', '.join(given)} set but no {key}")


class EmbeddingBackendConfig(_LocalRuntime):
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
    tool_call_rate: float = Field(0.5, ge=0, le=1)  # share of `tool_choice: auto` answers that call a tool
    gpu_hour_usd: float | None = Field(None, gt=0)  # per GPU (x tensor_parallel_size); default: the catalog's price

    def engine_flags(self) -> dict[str, Any]:
        """The `vllm serve` flags as keywords of `sluice.plan.startable_deployment` / `sim.build_simulator`.
        Whether they would start is a start-up check (`sluice.gateway.startup`), not a field rule."""
        return {"tensor_parallel_size": self.tensor_parallel_size, "quantization": self.quantization,
                "max_model_len": self.max_model_len, "gpu_memory_utilization": self.gpu_memory_utilization,
                "max_num_seqs": self.max_num_seqs, "max_num_batched_tokens": self.max_num_batched_tokens}


BackendConfig = Annotated[
    OpenAIBackendConfig
    | AnthropicBackendConfig
    | GGUFBackendConfig
    | TransformersBackendConfig
    | EmbeddingBackendConfig
    | SimBackendConfig,
    Field(discriminator="type"),
]


__all__ = [
    "AnthropicBackendConfig",
    "BackendConfig",
    "EmbeddingBackendConfig",
    "GGUFBackendConfig",
    "OpenAIBackendConfig",
    "SimBackendConfig",
    "TransformersBackendConfig",
]
