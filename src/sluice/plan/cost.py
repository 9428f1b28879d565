"""Cost per million output tokens from GPU-hour prices and a throughput."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.catalog import PriceMode
from sluice.plan.deployment import Deployment


@dataclass(slots=True, frozen=True)
class CostEstimate:
    """What a deployment costs under one price mode, and per million output tokens at a throughput."""

    mode: PriceMode
    provider: str
    usd_per_gpu_hour: float
    num_gpus: int
    output_tokens_per_s: float

    @property
    def usd_per_hour(self) -> float:
        return self.usd_per_gpu_hour * self.num_gpus

    @property
    def usd_per_million_output_tokens(self) -> float:
        return usd_per_million_tokens(self.usd_per_hour, self.output_tokens_per_s)


def usd_per_million_tokens(usd_per_hour: float, tokens_per_s: float) -> float:
    """Hourly price spread over the tokens made in that hour: usd/h ÷ (tokens/s × 3600) × 10^6."""
    if tokens_per_s <= 0:
        return float("inf")
    return usd_per_hour / (tokens_per_s * 3600) * 1e6


def estimate_cost(deployment: Deployment, output_tokens_per_s: float, mode: PriceMode = PriceMode.ON_DEMAND, *,
                  provider: str | None = None, usd_per_gpu_hour: float | None = None,
                  replicas: int = 1) -> CostEstimate | None:
    """The cheapest catalog offer for the deployment's GPU under `mode` (or the given price).

    `output_tokens_per_s` is for all `replicas` together. None when no provider sells the GPU that way.
    """
    gpus = deployment.num_gpus * replicas
    if usd_per_gpu_hour is not None:
        return CostEstimate(mode, provider or "custom", usd_per_gpu_hour, gpus, output_tokens_per_s)
    offer = deployment.gpu.cheapest_price(mode, provider)
    if offer is None:
        return None
    price, usd = offer
    return CostEstimate(mode, price.provider.id, usd, gpus, output_tokens_per_s)


def cost_by_mode(deployment: Deployment, output_tokens_per_s: float, *,
                 provider: str | None = None) -> list[CostEstimate]:
    """The cheapest catalog offer under every price mode that some provider sells the GPU under."""
    estimates = [estimate_cost(deployment, output_tokens_per_s, mode, provider=provider) for mode in PriceMode]
    return [estimate for estimate in estimates if estimate is not None]
