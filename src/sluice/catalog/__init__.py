"""Catalogs for the planner: GPUs (memory, bandwidth, FLOPS, prices) and model architectures, with sources."""

from sluice.catalog.api_prices import ModelPrice, PriceCatalog, TokenPrice, builtin_prices, load_prices
from sluice.catalog.catalog import Catalog, builtin_catalog, load_catalog
from sluice.catalog.errors import CatalogError, UnknownIdError
from sluice.catalog.gpus import GPU, GPUPrice, PriceMode, Provider
from sluice.catalog.hf_config import load_hf_config, model_from_hf_config
from sluice.catalog.models import ModelArch
from sluice.catalog.sources import Source

__all__ = [
    "GPU",
    "Catalog",
    "CatalogError",
    "GPUPrice",
    "ModelArch",
    "ModelPrice",
    "PriceCatalog",
    "PriceMode",
    "Provider",
    "Source",
    "TokenPrice",
    "UnknownIdError",
    "builtin_catalog",
    "builtin_prices",
    "load_catalog",
    "load_hf_config",
    "load_prices",
    "model_from_hf_config",
]
