"""API token prices (prices.yaml): the records, the loader with errors that name the bad key, and lookup."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sluice.catalog.errors import CatalogError

VERIFICATION_LEVELS = ("official", "secondary", "unverified")
_PRICE_FIELDS = ("input_usd_per_1m", "output_usd_per_1m", "cached_input_usd_per_1m", "cache_write_usd_per_1m")
_ENTRY_FIELDS = {"provider", "model", "aliases", "source", "as_of", "verified", "note", *_PRICE_FIELDS}
# A dated snapshot suffix: gpt-4o-2024-08-06, claude-sonnet-4-20250514.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(slots=True, frozen=True)
class TokenPrice:
    """USD per 1 million tokens; cached input and cache writes cost the input price when not given."""

    input_usd_per_1m: float
    output_usd_per_1m: float
    cached_input_usd_per_1m: float | None = None
    cache_write_usd_per_1m: float | None = None

    @property
    def cached_input(self) -> float:
        return self.input_usd_per_1m if self.cached_input_usd_per_1m is None else self.cached_input_usd_per_1m

    @property
    def cache_write(self) -> float:
        return self.input_usd_per_1m if self.cache_write_usd_per_1m is None else self.cache_write_usd_per_1m


@dataclass(slots=True, frozen=True)
class ModelPrice:
    """One catalog entry: a provider's model, its price, and where and when the price was read."""

    provider: str
    model: str
    price: TokenPrice
    source: str
    as_of: str
    verified: str  # official | secondary | unverified (see prices.yaml)
    aliases: tuple[str, ...] = ()
    note: str = ""


class PriceCatalog:
    """Model prices by upstream model name (case-insensitive, aliases included)."""

    __slots__ = ("_by_name", "entries")

    def __init__(self, entries: Iterable[ModelPrice] = ()) -> None:
        self.entries: tuple[ModelPrice, ...] = tuple(entries)
        self._by_name: dict[str, ModelPrice] = {}
        for entry in self.entries:
            for name in (entry.model, *entry.aliases):
                self._by_name[name.lower()] = entry

    def lookup(self, model: str) -> ModelPrice | None:
        """The entry for `model`, else for `model` without a dated snapshot suffix, else None."""
        name = model.lower()
        found = self._by_name.get(name)
        if found is None:
            undated = _SNAPSHOT_SUFFIX.sub("", name)
            found = self._by_name.get(undated) if undated != name else None
        return found

    def merged(self, raw: Any, origin: str) -> PriceCatalog:
        """This catalog plus the entries of one parsed prices file; a name listed again replaces the old entry."""
        added = parse_prices(raw, origin)
        replaced = {name.lower() for entry in added for name in (entry.model, *entry.aliases)}
        kept = [entry for entry in self.entries
                if not {name.lower() for name in (entry.model, *entry.aliases)} & replaced]
        return PriceCatalog([*kept, *added])

    def with_file(self, path: str | Path) -> PriceCatalog:
        file = Path(path)
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(f"{file}: no such prices file") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise CatalogError(f"{file}: cannot read YAML: {error}") from None
        return self.merged(raw, str(file))


def parse_prices(raw: Any, origin: str) -> list[ModelPrice]:
    """The `models:` list of a prices file (`sources:` may hold YAML anchors for the URLs)."""
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{origin}: a prices file must be a mapping with a models: list")
    unknown = set(raw) - {"sources", "models"}
    if unknown:
        raise CatalogError(f"{origin}: unknown top-level keys {sorted(unknown)}")
    models = raw.get("models") or []
    if not isinstance(models, list):
        raise CatalogError(f"{origin}: models must be a list")
    entries: list[ModelPrice] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(models):
        entry = parse_entry(item, f"{origin}: models[{index}]")
        for name in (entry.model, *entry.aliases):
            if name.lower() in seen:
                raise CatalogError(f"{origin}: models[{index}]: '{name}' is already listed by {seen[name.lower()]}")
            seen[name.lower()] = f"models[{index}] ({entry.model})"
        entries.append(entry)
    return entries


def parse_entry(raw: Any, where: str) -> ModelPrice:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: must be a mapping")
    unknown = set(raw) - _ENTRY_FIELDS
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise CatalogError(f"{where}.model: required (the upstream model name)")
    where = f"{where} ({model})"
    source = raw.get("source")
    if not isinstance(source, str) or not source.startswith(("https://", "http://")):
        raise CatalogError(f"{where}.source: must be the URL of the provider's pricing page, got {source!r}")
    as_of = str(raw.get("as_of") or "")
    try:
        dt.date.fromisoformat(as_of)
    except ValueError:
        raise CatalogError(f"{where}.as_of: must be a date YYYY-MM-DD, got {raw.get('as_of')!r}") from None
    verified = raw.get("verified", "unverified")
    if verified not in VERIFICATION_LEVELS:
        raise CatalogError(f"{where}.verified: must be one of {', '.join(VERIFICATION_LEVELS)}, got {verified!r}")
    aliases = raw.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(alias, str) and alias for alias in aliases):
        raise CatalogError(f"{where}.aliases: must be a list of model names")
    return ModelPrice(provider=str(raw.get("provider") or ""), model=model, price=parse_token_price(raw, where),
                      source=source, as_of=as_of, verified=verified, aliases=tuple(aliases),
                      note=str(raw.get("note") or ""))


def parse_token_price(raw: Mapping[str, Any], where: str) -> TokenPrice:
    values: dict[str, float | None] = {}
    for key in _PRICE_FIELDS:
        value = raw.get(key)
        required = key in ("input_usd_per_1m", "output_usd_per_1m")
        if value is None and not required:
            values[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise CatalogError(f"{where}.{key}: must be a number >= 0 (USD per 1M tokens), got {value!r}")
        values[key] = float(value)
    return TokenPrice(**values)  # type: ignore[arg-type]


@functools.cache
def builtin_prices() -> PriceCatalog:
    """The prices shipped in the package (parsed once per process)."""
    text = resources.files("sluice.catalog").joinpath("prices.yaml").read_text(encoding="utf-8")
    return PriceCatalog(parse_prices(yaml.safe_load(text), "sluice/catalog/prices.yaml"))


def load_prices(*extra_files: str | Path) -> PriceCatalog:
    """The built-in prices with user files layered on top, in order."""
    catalog = builtin_prices()
    for path in extra_files:
        catalog = catalog.with_file(path)
    return catalog


__all__ = ["ModelPrice", "PriceCatalog", "TokenPrice", "builtin_prices", "load_prices"]
