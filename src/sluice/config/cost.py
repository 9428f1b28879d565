"""Shared state, pricing and virtual-key sections (state/, cost/)."""

from __future__ import annotations

from pydantic import Field, field_validator

from sluice.config._base import _Strict


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


__all__ = [
    "GPUCostConfig",
    "KeysConfig",
    "PricingConfig",
    "StateConfig",
    "TokenPriceConfig",
]
