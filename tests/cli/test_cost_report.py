"""`sluice cost report` on a store filled with known rows: totals, groups, UTC days, CSV/JSON, PNG, GPU idle."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from matplotlib.image import imread
from typer.testing import CliRunner

from sluice.cli import app
from sluice.records import RequestRecord
from sluice.store import create_engine, migrate, request_log
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

runner = CliRunner()
WIDE = {"COLUMNS": "220"}
BEFORE_MIDNIGHT = dt.datetime(2026, 11, 1, 23, 59, 30, tzinfo=dt.UTC).timestamp()
AFTER_MIDNIGHT = dt.datetime(2026, 11, 2, 0, 0, 30, tzinfo=dt.UTC).timestamp()


def row(request_id: str, created_at: float, model: str, target: str | None, *, cost: float | None,
        prompt: int = 0, completion: int = 0, cached: int | None = None, key: str | None = None,
        team: str | None = None, **extra: Any) -> RequestRecord:
    values: dict[str, Any] = dict(
        request_id=request_id, created_at=created_at, endpoint="chat", model=model, target=target,
        backend_type="openai", upstream_model=model, stream=False, status_code=200, prompt_tokens=prompt,
        completion_tokens=completion, cached_tokens=cached, e2e_s=1.0, upstream_s=0.9, key_id=key, team=team,
        cost_usd=cost, attempts=1 if target else 0)
    values.update(extra)
    return RequestRecord(**values)


ROWS = [
    row("r1", BEFORE_MIDNIGHT, "gpt", "openai", cost=0.010, prompt=100, completion=50, cached=20, key="k1", team="a"),
    row("r2", AFTER_MIDNIGHT, "gpt", "openai", cost=0.020, prompt=200, completion=100, key="k1", team="a"),
    row("r3", AFTER_MIDNIGHT + 1, "claude", "anthropic", cost=0.005, prompt=300, completion=30, cached=100,
        key="k2", team="b"),
    row("r4", AFTER_MIDNIGHT + 60, "local", "ollama", cost=None, prompt=10, completion=10),  # unpriced
    # two overlapping requests on a GPU backend: busy [+100, +115] = 15 s
    row("r5", AFTER_MIDNIGHT + 100, "sim", "h100", cost=0.001, prompt=40, completion=20, key="k2", team="b",
        e2e_s=10.0),
    row("r6", AFTER_MIDNIGHT + 105, "sim", "h100", cost=0.001, prompt=40, completion=20, key="k2", team="b",
        e2e_s=10.0),
    row("r7", AFTER_MIDNIGHT + 150, "bogus", None, cost=None, status_code=404),  # never routed: left out
    row("r8", AFTER_MIDNIGHT + 200, "gpt", "openai", cost=0.0, prompt=100, completion=50, key="k1", team="a",
        cache_hit="exact", attempts=0),
    # routed, then refused by the key's budget before any upstream call: served nothing, left out
    row("r9", AFTER_MIDNIGHT + 250, "gpt", "openai", cost=0.0, key="k1", team="a", attempts=0, status_code=429,
        error_class="4xx", error_type="BudgetExceeded"),
]
TOTAL_COST = 0.037


def fill(url: str, records: list[RequestRecord]) -> None:
    async def work() -> None:
        await migrate(url)
        engine = create_engine(url)
        try:
            await request_log.insert_many(engine, records)
        finally:
            await engine.dispose()

    asyncio.run(work())


@pytest.fixture
def store(database_url: str) -> str:  # noqa: F811
    fill(database_url, ROWS)
    return database_url


def report(*args: str) -> Any:
    result = runner.invoke(app, ["cost", "report", *args], env=WIDE)
    assert result.exit_code == 0, result.output
    return result


def test_totals_by_model_match_the_rows(store: str) -> None:
    data = json.loads(report("--db", store, "--by", "model", "--json").stdout)
    total = data["total"]
    assert (total["requests"], total["prompt_tokens"], total["completion_tokens"], total["cached_tokens"]) == (
        7, 790, 280, 120)
    assert total["cost_usd"] == pytest.approx(TOTAL_COST)
    assert total["unpriced_requests"] == 1
    by_model = {item["group"]: item for item in data["rows"]}
    assert list(by_model) == ["gpt", "claude", "sim", "local"]  # costliest first
    gpt = by_model["gpt"]
    assert (gpt["requests"], gpt["prompt_tokens"], gpt["cached_tokens"]) == (3, 400, 20)
    assert gpt["cost_usd"] == pytest.approx(0.030)
    assert gpt["cost_per_1k_requests_usd"] == pytest.approx(10.0)
    assert gpt["share"] == pytest.approx(0.030 / TOTAL_COST)
    assert by_model["local"]["cost_usd"] == 0 and by_model["local"]["unpriced_requests"] == 1
    assert sum(item["cost_usd"] for item in data["rows"]) == pytest.approx(total["cost_usd"])


def test_by_day_splits_at_midnight_utc(store: str) -> None:
    data = json.loads(report("--db", store, "--by", "day", "--format", "json").stdout)
    days = {item["group"]: (item["requests"], round(item["cost_usd"], 9)) for item in data["rows"]}
    assert days == {"2026-11-01": (1, 0.010), "2026-11-02": (6, 0.027)}
    split = {(item["day"], item["model"]): round(item["cost_usd"], 9) for item in data["day_model"]}
    assert split[("2026-11-01", "gpt")] == 0.010 and split[("2026-11-02", "gpt")] == 0.020
    assert split[("2026-11-02", "sim")] == 0.002


def test_by_key_and_team_label_requests_without_one(store: str) -> None:
    keys = json.loads(report("--db", store, "--by", "key", "--json").stdout)
    assert {item["group"]: item["requests"] for item in keys["rows"]} == {"k1": 3, "k2": 3, "(no key)": 1}
    teams = json.loads(report("--db", store, "--by", "team", "--json").stdout)
    assert {item["group"]: round(item["cost_usd"], 9) for item in teams["rows"]} == {
        "a": 0.030, "b": 0.007, "(no team)": 0.0}


def test_since_and_until_bound_the_window(store: str) -> None:
    data = json.loads(report("--db", store, "--since", "2026-11-02", "--json").stdout)
    assert data["total"]["requests"] == 6 and data["total"]["cost_usd"] == pytest.approx(0.027)
    assert data["since"] == "2026-11-02T00:00:00+00:00"
    early = json.loads(report("--db", store, "--until", "2026-11-02T00:00:00Z", "--json").stdout)
    assert early["total"]["requests"] == 1 and early["total"]["cost_usd"] == pytest.approx(0.010)


def test_csv_parses_with_one_line_per_group(store: str) -> None:
    text = report("--db", store, "--by", "team", "--format", "csv").stdout
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["group"] for line in lines] == ["a", "b", "(no team)"]
    assert float(lines[0]["cost_usd"]) == pytest.approx(0.030)
    assert int(lines[1]["requests"]) == 3 and float(lines[1]["share"]) == pytest.approx(0.007 / TOTAL_COST, abs=1e-6)


def test_the_table_shows_totals_and_unpriced_requests(store: str) -> None:
    output = report("--db", store).stdout
    assert "total" in output and "$0.0370" in output and "unpriced" in output
    assert "gpt" in output and "$10.0000" in output  # per 1k requests


def test_gpu_backends_get_utilisation_and_idle_cost(store: str, tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"url": store},
        "backends": {"h100": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "gpu_hour_usd": 3.6}}}))
    since, until = dt.datetime.fromtimestamp(AFTER_MIDNIGHT + 100, dt.UTC), \
        dt.datetime.fromtimestamp(AFTER_MIDNIGHT + 400, dt.UTC)
    data = json.loads(report("--config", str(config), "--since", since.isoformat(), "--until", until.isoformat(),
                             "--json").stdout)
    (gpu,) = data["gpu"]
    assert gpu["backend"] == "h100" and gpu["usd_per_hour"] == 3.6
    assert gpu["window_s"] == pytest.approx(300.0) and gpu["busy_s"] == pytest.approx(15.0)
    assert gpu["utilisation"] == pytest.approx(0.05)
    assert gpu["gpu_cost_usd"] == pytest.approx(0.300) and gpu["busy_cost_usd"] == pytest.approx(0.015)
    assert gpu["idle_cost_usd"] == pytest.approx(0.285) and gpu["attributed_usd"] == pytest.approx(0.002)
    table = report("--config", str(config), "--since", since.isoformat(), "--until", until.isoformat()).stdout
    assert "GPU utilisation" in table and "5.0%" in table and "idle GPU time cost $0.2850" in table


def test_a_gpu_backend_priced_per_token_by_an_override_gets_no_idle_cost(store: str, tmp_path: Path) -> None:
    sim = {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm"}
    config = tmp_path / "sluice.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"url": store},
        "backends": {"h100": sim, "h100-tokens": sim},
        "pricing": {"targets": {"h100-tokens": {"input_usd_per_1m": 0.2, "output_usd_per_1m": 0.6}}},
        "models": {"a": {"targets": [{"backend": "h100", "model": "llama-3.1-8b"}]},
                   "b": {"targets": [{"backend": "h100-tokens", "model": "llama-3.1-8b"}]}}}))
    data = json.loads(report("--config", str(config), "--json").stdout)
    assert [gpu["backend"] for gpu in data["gpu"]] == ["h100"]  # h100-tokens' requests pay a token price


def test_the_plot_is_a_png(store: str, tmp_path: Path) -> None:
    for by in ("model", "day"):
        chart = tmp_path / f"cost-{by}.png"
        report("--db", store, "--by", by, "--plot", str(chart))
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = imread(chart).shape
        assert (width, height) == (1100, 660)


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["cost", "report", "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    for args, message in ((["--since", "yesterday"], "--since: expected a duration like 12h"),
                          (["--by", "colour"], "--by: expected one of model, key, team, target, day"),
                          (["--format", "xml"], "--format: expected one of table, csv, json")):
        result = runner.invoke(app, ["cost", "report", "--db", "sqlite:///x.db", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_an_empty_window_says_so(store: str) -> None:
    assert "no routed requests" in report("--db", store, "--since", "2030-01-01").stdout
