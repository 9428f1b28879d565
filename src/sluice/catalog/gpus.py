"""GPUs, cloud providers and GPU-hour prices: the frozen records and their parsers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sluice.catalog.errors import CatalogError
from sluice.catalog.sources import Source, resolve_source

GIB = 1024**3


class PriceMode(StrEnum):
    """How GPU-hours are bought; the CLI's `--price` values."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"
    RESERVED_1Y = "reserved-1y"
    RESERVED_3Y = "reserved-3y"


@dataclass(slots=True, frozen=True)
class Provider:
    """A cloud or GPU cloud with its typical discounts off on-demand (None: not offered)."""

    id: str
    name: str
    kind: str
    spot_discount: float | None
    reserved_1y_discount: float | None
    reserved_3y_discount: float | None
    source: Source
    spot_source: Source | None

    def discount(self, mode: PriceMode) -> float | None:
        """Fraction off the on-demand price for `mode`; None when the provider does not sell it."""
        return {
            PriceMode.ON_DEMAND: 0.0,
            PriceMode.SPOT: self.spot_discount,
            PriceMode.RESERVED_1Y: self.reserved_1y_discount,
            PriceMode.RESERVED_3Y: self.reserved_3y_discount,
        }[mode]


@dataclass(slots=True, frozen=True)
class GPUPrice:
    """One provider's on-demand price for one GPU, per GPU-hour."""

    gpu_id: str
    provider: Provider
    on_demand_usd_per_hour: float
    source: Source
    note: str = ""

    def usd_per_hour(self, mode: PriceMode) -> float | None:
        discount = self.provider.discount(mode)
        return None if discount is None else self.on_demand_usd_per_hour * (1.0 - discount)


@dataclass(slots=True, frozen=True)
class GPU:
    """One accelerator model. Compute figures are dense (no sparsity); None means no hardware support."""

    id: str
    name: str
    vendor: str
    memory_gb: float
    usable_memory_gib: float
    memory_bandwidth_gb_s: float
    bf16_tflops: float
    fp8_tflops: float | None
    int8_tops: float | None
    interconnect: str
    interconnect_gb_s: float
    max_gpus_per_node: int
    sources: tuple[tuple[str, Source], ...]
    prices: tuple[GPUPrice, ...] = ()

    @property
    def usable_memory_bytes(self) -> int:
        return int(self.usable_memory_gib * GIB)

    @property
    def memory_bandwidth_bytes_s(self) -> float:
        return self.memory_bandwidth_gb_s * 1e9

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_tflops is not None

    def peak_flops(self, compute: str) -> float:
        """Dense peak FLOP/s for GEMMs in `compute` ('bf16', 'fp8', 'int8'), falling back to BF16."""
        tera = {"fp8": self.fp8_tflops, "int8": self.int8_tops}.get(compute) or self.bf16_tflops
        return tera * 1e12

    def source(self, field: str) -> Source:
        """The source for a field group ('spec', 'usable_memory', 'compute'); 'spec' is the fallback."""
        table = dict(self.sources)
        return table.get(field) or table["spec"]

    def cheapest_price(self, mode: PriceMode, provider: str | None = None) -> tuple[GPUPrice, float] | None:
        """The lowest (price row, USD per GPU-hour) under `mode`, optionally from one provider."""
        offers = [(price, price.usd_per_hour(mode)) for price in self.prices
                  if provider is None or price.provider.id == provider]
        priced = [(price, usd) for price, usd in offers if usd is not None]
        return min(priced, key=lambda offer: offer[1]) if priced else None


_GPU_NUMBERS = ("memory_gb", "usable_memory_gib", "memory_bandwidth_gb_s", "bf16_tflops", "interconnect_gb_s")


def parse_provider(provider_id: str, raw: Any, sources: Mapping[str, Source], *, strict: bool) -> Provider:
    where = f"providers.{provider_id}"
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: must be a mapping")
    discounts = {key: _optional_fraction(raw, key, where)
                 for key in ("spot_discount", "reserved_1y_discount", "reserved_3y_discount")}
    spot_source = raw.get("spot_source")
    return Provider(
        id=provider_id, name=str(raw.get("name", provider_id)), kind=str(raw.get("kind", "cloud")),
        source=resolve_source(raw.get("source"), sources, where, required=strict),
        spot_source=None if spot_source is None else resolve_source(spot_source, sources, where, required=True),
        **discounts,
    )


def parse_gpu(raw: Any, sources: Mapping[str, Source], *, strict: bool) -> GPU:
    if not isinstance(raw, Mapping) or not raw.get("id"):
        raise CatalogError("gpus: every entry needs an id")
    gpu_id = str(raw["id"]).lower()
    where = f"gpus[{gpu_id}]"
    memory_gb, usable_gib, bandwidth, bf16, link = (_positive(raw, key, where) for key in _GPU_NUMBERS)
    raw_sources = raw.get("sources") or {}
    if not isinstance(raw_sources, Mapping) or (strict and "spec" not in raw_sources):
        raise CatalogError(f"{where}.sources: needs at least a 'spec' source")
    resolved = tuple((str(key), resolve_source(value, sources, f"{where}.sources.{key}", required=True))
                     for key, value in raw_sources.items())
    if "spec" not in dict(resolved):
        resolved = (*resolved, ("spec", resolve_source(None, sources, where, required=False)))
    return GPU(
        id=gpu_id, name=str(raw.get("name", gpu_id)), vendor=str(raw.get("vendor", "")),
        fp8_tflops=_optional_positive(raw, "fp8_tflops", where), int8_tops=_optional_positive(raw, "int8_tops", where),
        memory_gb=memory_gb, usable_memory_gib=usable_gib, memory_bandwidth_gb_s=bandwidth, bf16_tflops=bf16,
        interconnect=str(raw.get("interconnect", "pcie")), interconnect_gb_s=link,
        max_gpus_per_node=int(raw.get("max_gpus_per_node", 8)), sources=resolved,
    )


def parse_price(raw: Any, providers: Mapping[str, Provider], sources: Mapping[str, Source], *,
                strict: bool) -> GPUPrice:
    if not isinstance(raw, Mapping):
        raise CatalogError("prices: every entry must be a mapping")
    where = f"prices[{raw.get('gpu')}/{raw.get('provider')}]"
    provider = providers.get(str(raw.get("provider")))
    if provider is None:
        raise CatalogError(f"{where}: unknown provider '{raw.get('provider')}' (define it under providers:)")
    return GPUPrice(
        gpu_id=str(raw.get("gpu", "")).lower(), provider=provider,
        on_demand_usd_per_hour=_positive(raw, "on_demand_usd", where),
        source=resolve_source(raw.get("source"), sources, where, required=strict), note=str(raw.get("note", "")),
    )


def _positive(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CatalogError(f"{where}.{key}: must be a positive number, got {value!r}")
    return float(value)


def _optional_positive(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if raw.get(key) is None else _positive(raw, key, where)


def _optional_fraction(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise CatalogError(f"{where}.{key}: must be a fraction in [0, 1), got {value!r}")
    return float(value)
