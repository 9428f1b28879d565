"""Where a catalog number comes from: a titled, dated reference that every entry must name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.catalog.errors import CatalogError


@dataclass(slots=True, frozen=True)
class Source:
    """A citation: what document, where, and when it was published or read."""

    id: str
    title: str
    url: str
    date: str

    def cite(self) -> str:
        return f"{self.title}, {self.url} ({self.date})"


USER_SUPPLIED = Source("user-supplied", "user-supplied catalog entry", "", "")


def parse_sources(raw: Any, where: str) -> dict[str, Source]:
    """The `sources:` mapping of a catalog file: id -> {title, url, date}."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: sources must be a mapping of id -> {{title, url, date}}")
    return {str(key): parse_source(value, f"{where}: sources.{key}", str(key)) for key, value in raw.items()}


def parse_source(raw: Any, where: str, source_id: str) -> Source:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: a source needs title, url and date")
    missing = [key for key in ("title", "url", "date") if not raw.get(key)]
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(missing)}")
    return Source(source_id, str(raw["title"]), str(raw["url"]), str(raw["date"]))


def resolve_source(raw: Any, known: Mapping[str, Source], where: str, *, required: bool) -> Source:
    """A `source:` value: an id from the `sources:` table, or an inline {title, url, date}."""
    if raw is None:
        if required:
            raise CatalogError(f"{where}: missing source")
        return USER_SUPPLIED
    if isinstance(raw, Mapping):
        return parse_source(raw, where, f"inline:{raw.get('title', '')}")
    source = known.get(str(raw))
    if source is None:
        raise CatalogError(f"{where}: unknown source '{raw}' (define it under sources:)")
    return source
