"""Which price applies to a target (backend + upstream model): config overrides, GPU-hours, or the catalog.

Precedence, first match wins (docs/cost.md):
  1. `pricing.targets["<backend>:<upstream model>"]`, then `pricing.targets["<backend>"]`;
  2. GPU-hours: a backend with `gpu` or `gpu_hour_usd`, and every `sim` backend (it knows its GPU);
  3. `pricing.models["<upstream model>"]`;
  4. the API price catalog (prices.yaml + `pricing.files`), for `openai` and `anthropic` type backends only;
  5. unpriced: cost None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sluice.catalog import Catalog, CatalogError, PriceCatalog, PriceMode, TokenPrice, builtin_catalog, load_prices
from sluice.config import BackendConfig, PricingConfig, SimBackendConfig, TokenPriceConfig
from sluice.cost.gpu_meter import GPUMeter
from sluice.cost.usage_cost import TokenWeights
from sluice.errors import ConfigError

log = logging.getLogger("sluice.cost")

CATALOG_BACKEND_TYPES = frozenset({"openai", "anthropic"})  # remote APIs whose model names the catalog knows


@dataclass(slots=True, frozen=True)
class TokenPriced:
    price: TokenPrice
    origin: str  # where the price came from, for `sluice cost prices` and logs


@dataclass(slots=True, frozen=True)
class GPUPriced:
    backend: str
    meter: GPUMeter  # one per backend, shared by every model it serves
    gpu: str | None
    gpu_count: int
    usd_per_gpu_hour: float
    weights: TokenWeights
    origin: str


TargetPrice = TokenPriced | GPUPriced


@dataclass(slots=True, frozen=True)
class GPUHours:
    """What a backend's GPUs cost per hour, and where the figure came from."""

    gpu: str | None
    gpu_count: int
    usd_per_gpu_hour: float
    origin: str

    @property
    def usd_per_hour(self) -> float:
        return self.usd_per_gpu_hour * self.gpu_count


def gpu_hours(name: str, backend: BackendConfig, gpus: Catalog) -> GPUHours | None:
    """The backend's GPU-hour price: `gpu_hour_usd`, else the catalog's cheapest on-demand offer; None when
    the backend declares no GPU (or, for `sim`, its GPU has no catalog price)."""
    if isinstance(backend, SimBackendConfig):
        gpu_id, count, given = backend.gpu, backend.tensor_parallel_size, backend.gpu_hour_usd
    else:
        gpu_id = getattr(backend, "gpu", None)
        count = getattr(backend, "gpu_count", 1)
        given = getattr(backend, "gpu_hour_usd", None)
        if gpu_id is None and given is None:
            return None
    if gpu_id is not None:
        try:
            gpu = gpus.gpu(gpu_id)
        except CatalogError as error:
            raise ConfigError(f"backends.{name}.gpu: {error}") from None
        gpu_id = gpu.id
    if given is not None:
        return GPUHours(gpu_id, count, given, f"backends.{name}.gpu_hour_usd")
    assert gpu_id is not None
    offer = gpus.gpu(gpu_id).cheapest_price(PriceMode.ON_DEMAND)
    if offer is None:
        if isinstance(backend, SimBackendConfig):
            log.warning("backend %s: GPU %s has no catalog price; its requests are unpriced "
                        "(set gpu_hour_usd)", name, gpu_id)
            return None
        raise ConfigError(f"backends.{name}.gpu_hour_usd: the GPU catalog has no price for {gpu_id}; "
                          "set gpu_hour_usd (USD per GPU-hour)")
    price, usd = offer
    return GPUHours(gpu_id, count, usd, f"GPU catalog: {gpu_id} on-demand at {price.provider.id} "
                                        f"({price.source.url or price.source.title})")


class PriceBook:
    """Resolves and caches the price of each (backend, upstream model) pair."""

    def __init__(self, config: PricingConfig, backends: Mapping[str, BackendConfig], *,
                 catalog: PriceCatalog | None = None, gpus: Catalog | None = None) -> None:
        self.config = config
        self.backends = backends
        try:
            self.catalog = catalog if catalog is not None else load_prices(*config.files)
        except CatalogError as error:
            raise ConfigError(f"pricing.files: {error}") from None
        gpu_catalog = gpus if gpus is not None else builtin_catalog()
        weights = TokenWeights(config.gpu.prompt_token_weight, config.gpu.cached_token_weight)
        self.gpu_backends: dict[str, GPUPriced] = {}
        for name, backend in backends.items():
            hours = gpu_hours(name, backend, gpu_catalog)
            if hours is not None:
                self.gpu_backends[name] = GPUPriced(
                    name, GPUMeter(hours.usd_per_hour, config.gpu.window_s), hours.gpu, hours.gpu_count,
                    hours.usd_per_gpu_hour, weights, hours.origin)
        self._models = {name.lower(): price for name, price in config.models.items()}
        self._resolved: dict[tuple[str, str], TargetPrice | None] = {}

    def price_for(self, backend: str, upstream_model: str) -> TargetPrice | None:
        key = (backend, upstream_model)
        try:
            return self._resolved[key]
        except KeyError:
            found = self._resolved[key] = self._resolve(backend, upstream_model)
            return found

    def _resolve(self, backend: str, upstream_model: str) -> TargetPrice | None:
        targets = self.config.targets
        for key in (f"{backend}:{upstream_model}", backend):
            if key in targets:
                return TokenPriced(_token_price(targets[key]), f"pricing.targets.{key}")
        if backend in self.gpu_backends:
            return self.gpu_backends[backend]
        override = self._models.get(upstream_model.lower())
        if override is not None:
            return TokenPriced(_token_price(override), f"pricing.models.{upstream_model}")
        config = self.backends.get(backend)
        if config is not None and config.type in CATALOG_BACKEND_TYPES:
            entry = self.catalog.lookup(upstream_model)
            if entry is not None:
                return TokenPriced(entry.price, f"catalog: {entry.model} ({entry.source}, {entry.as_of}, "
                                                f"{entry.verified})")
        return None


def _token_price(config: TokenPriceConfig) -> TokenPrice:
    return TokenPrice(config.input_usd_per_1m, config.output_usd_per_1m, config.cached_input_usd_per_1m,
                      config.cache_write_usd_per_1m)


__all__ = ["CATALOG_BACKEND_TYPES", "GPUHours", "GPUPriced", "PriceBook", "TargetPrice", "TokenPriced", "gpu_hours"]
