"""`sluice cost prices`: the catalog with its verification levels, and each configured target's price."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sluice.cli import app

runner = CliRunner()


def test_the_catalog_lists_prices_with_their_source_and_verification() -> None:
    result = runner.invoke(app, ["cost", "prices", "--json"])
    assert result.exit_code == 0, result.output
    entries = {entry["model"]: entry for entry in json.loads(result.stdout)}
    assert entries["gpt-4o-mini"]["cached_input_usd_per_1m"] == 0.075
    assert entries["claude-3-5-haiku-20241022"]["verified"] == "official"
    assert entries["mistral-small-2503"]["verified"] == "unverified"
    assert all(entry["source"].startswith("https://") for entry in entries.values())


def test_with_a_config_each_target_shows_where_its_price_comes_from(tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(yaml.safe_dump({
        "backends": {"openai": {"type": "openai", "base_url": "https://api.openai.com/v1"},
                     "h100": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm"},
                     "ollama": {"type": "openai", "base_url": "http://localhost:11434/v1"}},
        "models": {"mini": {"targets": [{"backend": "openai", "model": "gpt-4o-mini"}]},
                   "llama": {"targets": [{"backend": "h100", "model": "llama-3.1-8b"},
                                         {"backend": "ollama", "model": "llama3.1:8b"}]}}}))
    result = runner.invoke(app, ["cost", "prices", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows = {(row["model"], row["backend"]): row for row in json.loads(result.stdout)}
    assert rows[("mini", "openai")]["input_usd_per_1m"] == 0.15
    assert rows[("mini", "openai")]["from"].startswith("catalog: gpt-4o-mini")
    assert rows[("llama", "h100")]["gpu_usd_per_hour"] == 2.99
    assert rows[("llama", "ollama")]["from"] == "unpriced"
    table = runner.invoke(app, ["cost", "prices", "--config", str(config)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "GPU catalog: h100-sxm" in table.output
