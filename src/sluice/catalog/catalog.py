"""The catalog: built-in GPU and model data files, merged with a user's YAML additions."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sluice.catalog.errors import CatalogError, find_by_id
from sluice.catalog.gpus import GPU, Provider, parse_gpu, parse_price, parse_provider
from sluice.catalog.hf_config import is_hf_config_path, load_hf_config
from sluice.catalog.models import ModelArch, parse_model
from sluice.catalog.sources import Source, parse_sources

BUILTIN_FILES = ("gpus.yaml", "models.yaml")


@dataclass(slots=True, frozen=True)
class Catalog:
    """GPUs (with their prices), providers, models and the sources they cite, by id."""

    gpus: Mapping[str, GPU] = field(default_factory=dict)
    models: Mapping[str, ModelArch] = field(default_factory=dict)
    providers: Mapping[str, Provider] = field(default_factory=dict)
    sources: Mapping[str, Source] = field(default_factory=dict)

    def gpu(self, gpu_id: str) -> GPU:
        return find_by_id(self.gpus, gpu_id, "GPU")

    def model(self, model: str) -> ModelArch:
        """A catalog model by id, or a local Hugging Face config.json (file or checkpoint directory)."""
        if model not in self.models and is_hf_config_path(model):
            return load_hf_config(model)
        return find_by_id(self.models, model, "model")

    def merged(self, raw: Mapping[str, Any], origin: str, *, strict: bool = False) -> Catalog:
        """This catalog plus the entries of one parsed catalog file (same ids replace earlier ones).

        `strict` (the built-in files) demands a source on every entry; user additions may omit it.
        """
        unknown = set(raw) - {"sources", "providers", "gpus", "models", "prices"}
        if unknown:
            raise CatalogError(f"{origin}: unknown top-level keys {sorted(unknown)}")
        try:
            sources = {**self.sources, **parse_sources(raw.get("sources"), origin)}
            providers = {**self.providers, **{
                str(key): parse_provider(str(key), value, sources, strict=strict)
                for key, value in _mapping(raw, "providers", origin).items()}}
            gpus = dict(self.gpus)
            for entry in _list(raw, "gpus", origin):
                gpu = parse_gpu(entry, sources, strict=strict)
                gpus[gpu.id] = replace(gpu, prices=gpus[gpu.id].prices if gpu.id in gpus else ())
            for entry in _list(raw, "prices", origin):
                price = parse_price(entry, providers, sources, strict=strict)
                if price.gpu_id not in gpus:
                    raise CatalogError(f"prices: unknown gpu '{price.gpu_id}'")
                kept = tuple(p for p in gpus[price.gpu_id].prices if p.provider.id != price.provider.id)
                gpus[price.gpu_id] = replace(gpus[price.gpu_id], prices=(*kept, price))
            models = {**self.models}
            for entry in _list(raw, "models", origin):
                model = parse_model(entry, sources, strict=strict)
                models[model.id] = model
        except CatalogError as error:
            raise CatalogError(f"{origin}: {error}") from None
        return Catalog(gpus=gpus, models=models, providers=providers, sources=sources)

    def with_file(self, path: str | Path) -> Catalog:
        """This catalog plus a user's YAML file (same layout as the built-in gpus.yaml/models.yaml)."""
        file = Path(path)
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise CatalogError(f"{file}: no such catalog file") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise CatalogError(f"{file}: cannot read YAML: {error}") from None
        if not isinstance(raw, Mapping):
            raise CatalogError(f"{file}: a catalog file must be a mapping with gpus:/models:/prices: keys")
        return self.merged(raw, str(file))


@functools.cache
def builtin_catalog() -> Catalog:
    """The catalog shipped in the package (parsed once per process)."""
    catalog = Catalog()
    for name in BUILTIN_FILES:
        text = resources.files("sluice.catalog").joinpath(name).read_text(encoding="utf-8")
        catalog = catalog.merged(yaml.safe_load(text), f"sluice/catalog/{name}", strict=True)
    return catalog


def load_catalog(*extra_files: str | Path) -> Catalog:
    """The built-in catalog with user files layered on top, in order."""
    catalog = builtin_catalog()
    for path in extra_files:
        catalog = catalog.with_file(path)
    return catalog


def _list(raw: Mapping[str, Any], key: str, origin: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise CatalogError(f"{origin}: {key} must be a list")
    return value


def _mapping(raw: Mapping[str, Any], key: str, origin: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise CatalogError(f"{origin}: {key} must be a mapping")
    return value
