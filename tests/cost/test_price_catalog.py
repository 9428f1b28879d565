"""The API price catalog (prices.yaml): every entry cited and dated, lookups, and loader errors naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from sluice.catalog import CatalogError, PriceCatalog, builtin_prices, load_prices

ENTRY = {"provider": "acme", "model": "acme-1", "input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0,
         "source": "https://acme.example/pricing", "as_of": "2026-11-01", "verified": "official"}


def test_every_builtin_entry_names_a_pricing_page_a_date_and_how_it_was_checked() -> None:
    entries = builtin_prices().entries
    assert len(entries) >= 40
    for entry in entries:
        assert entry.source.startswith("https://"), entry.model
        assert dt.date.fromisoformat(entry.as_of) <= dt.date(2026, 12, 31), entry.model
        assert entry.verified in ("official", "secondary", "unverified"), entry.model
    providers = {entry.provider for entry in entries}
    assert {"openai", "anthropic", "groq", "together", "mistral"} <= providers


def test_the_models_the_gateway_is_asked_about_most_are_listed() -> None:
    prices = builtin_prices()
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini",
                  "o4-mini", "claude-3-5-haiku-latest", "claude-3-5-sonnet-latest", "claude-3-7-sonnet-latest",
                  "claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-haiku-4-5",
                  "llama-3.1-8b-instant", "llama-3.3-70b-versatile", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
                  "mistral-large-2411", "text-embedding-3-small"):
        assert prices.lookup(model) is not None, model


def test_lookup_is_case_insensitive_and_follows_aliases() -> None:
    prices = builtin_prices()
    entry = prices.lookup("Claude-3-5-Haiku-Latest")
    assert entry is not None and entry.model == "claude-3-5-haiku-20241022"
    assert entry.price.cached_input_usd_per_1m == 0.08 and entry.price.cache_write_usd_per_1m == 1.00


def test_an_unlisted_dated_snapshot_resolves_to_its_model_but_a_listed_one_keeps_its_own_price() -> None:
    prices = builtin_prices()
    newer = prices.lookup("gpt-4.1-mini-2026-03-01")
    assert newer is not None and newer.model == "gpt-4.1-mini"
    first_4o = prices.lookup("gpt-4o-2024-05-13")
    assert first_4o is not None and first_4o.price.input_usd_per_1m == 5.00
    assert prices.lookup("gpt-4o").price.input_usd_per_1m == 2.50  # type: ignore[union-attr]
    assert prices.lookup("my-finetune") is None


def test_a_user_file_adds_and_replaces_entries(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    cheaper_4o = {**ENTRY, "provider": "openai", "model": "gpt-4o", "input_usd_per_1m": 2.0}
    file.write_text(yaml.safe_dump({"models": [ENTRY, cheaper_4o]}))
    prices = load_prices(file)
    assert prices.lookup("acme-1") is not None
    assert prices.lookup("gpt-4o").price.input_usd_per_1m == 2.0  # type: ignore[union-attr]
    assert prices.lookup("chatgpt-4o-latest") is None  # the old entry (and its aliases) was replaced
    assert prices.lookup("gpt-4o-mini") is not None


@pytest.mark.parametrize(("change", "message"), [
    ({"source": None}, "models[0] (acme-1).source: must be the URL"),
    ({"source": "acme pricing page"}, ".source: must be the URL"),
    ({"as_of": "last week"}, ".as_of: must be a date YYYY-MM-DD"),
    ({"input_usd_per_1m": -1}, ".input_usd_per_1m: must be a number >= 0"),
    ({"output_usd_per_1m": None}, ".output_usd_per_1m: must be a number >= 0"),
    ({"verified": "yes"}, ".verified: must be one of official, secondary, unverified"),
    ({"colour": "red"}, "unknown keys ['colour']"),
    ({"model": ""}, "models[0].model: required"),
])
def test_bad_entries_are_refused_with_the_key_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        PriceCatalog().merged({"models": [{**ENTRY, **change}]}, "prices.yaml")
    assert message in str(caught.value)


def test_a_name_listed_twice_is_refused() -> None:
    twice = [ENTRY, {**ENTRY, "model": "acme-2", "aliases": ["ACME-1"]}]
    with pytest.raises(CatalogError, match=r"models\[1\]: 'ACME-1' is already listed by models\[0\] \(acme-1\)"):
        PriceCatalog().merged({"models": twice}, "prices.yaml")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such prices file"):
        load_prices(tmp_path / "nope.yaml")
