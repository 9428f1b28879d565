"""Per-request records kept by default beside the result (JSONL), read back by `bench report`, exported as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.loadtest.records import CSV_FIELDS, arrays_of, csv_row, records_of, with_records
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
SMALL = ["--model", "fake-model", "--random-input-len", "6", "--random-output-len", "4"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[OpenAIUpstream, str]]:
    app_ = make_openai_upstream()
    with serve_app(app_) as url:
        yield app_, url


@pytest.fixture(autouse=True)
def healthy(upstream: tuple[OpenAIUpstream, str]) -> None:
    upstream[0].reset()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["bench", *args], env=WIDE)


def test_a_run_keeps_its_per_request_records_beside_the_result(upstream: tuple[OpenAIUpstream, str],
                                                               tmp_path: Path) -> None:
    app_, url = upstream
    app_.fault, app_.fault_times = "http_500", 1
    out = tmp_path / "run.json"
    result = invoke("run", "--base-url", url, *SMALL, "--num-prompts", "4", "--max-concurrency", "1",
                    "--save-result", str(out))
    assert result.exit_code == 0, result.output
    assert "ttfts" not in json.loads(out.read_text())
    records = [json.loads(line) for line in (tmp_path / "run.requests.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert records[0]["error"] == "http_500" and records[0]["error_detail"]
    ok = records[1]
    assert ok["error"] == "" and ok["output_tokens"] == 4 and len(ok["itl_s"]) == 3 and ok["turn"] == 0
    assert 0 < ok["ttft_s"] <= ok["e2el_s"] and ok["input_tokens"] == 6 and ok["generated_text"]


def test_report_draws_the_run_plots_from_the_records_and_exports_csv(upstream: tuple[OpenAIUpstream, str],
                                                                     tmp_path: Path) -> None:
    _, url = upstream
    out, html, table = tmp_path / "run.json", tmp_path / "run.html", tmp_path / "run.csv"
    assert invoke("run", "--base-url", url, *SMALL, "--num-prompts", "5", "--save-result", str(out)).exit_code == 0
    rendered = invoke("report", str(out), "--out", str(html), "--csv", str(table))
    assert rendered.exit_code == 0, rendered.output
    assert html.read_text().count("data:image/png;base64,") == 3  # CDFs, latency and throughput over time
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 5 and tuple(rows[0]) == CSV_FIELDS
    assert all(row["error"] == "" and float(row["ttft_ms"]) > 0 and row["chunks"] == "4" for row in rows)
    assert invoke("report", str(out)).exit_code == 2  # nothing asked for


def test_run_csv_flag_and_opting_out_of_records(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    _, url = upstream
    out, table = tmp_path / "run.json", tmp_path / "rows.csv"
    assert invoke("run", "--base-url", url, *SMALL, "--num-prompts", "3", "--save-result", str(out),
                  "--no-save-requests", "--csv", str(table)).exit_code == 0
    assert not (tmp_path / "run.requests.jsonl").exists()
    assert len(list(csv.DictReader(table.open()))) == 3


def test_a_sweep_keeps_each_steps_records_and_its_report_uses_them(upstream: tuple[OpenAIUpstream, str],
                                                                   tmp_path: Path) -> None:
    _, url = upstream
    out, html = tmp_path / "sweep.json", tmp_path / "sweep.html"
    result = invoke("sweep", "--base-url", url, *SMALL, "--sweep", "concurrency", "--values", "1,2", "--num-prompts",
                    "2", "--save-result", str(out))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "sweep.requests.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 1, 2, 2]
    assert invoke("report", str(out), "--out", str(html)).exit_code == 0
    assert "step_holding_2_latency_cdf.png" in html.read_text()


def test_records_and_arrays_round_trip_and_csv_rows_are_in_ms() -> None:
    result = {"input_lens": [5, 5], "output_lens": [3, 0], "ttfts": [0.1, 0.0], "itls": [[0.02, 0.04], []],
              "e2els": [0.2, 0.01], "start_times": [0.0, 0.5], "generated_texts": ["a b c", ""],
              "errors": ["", "http_500"], "error_details": ["", "boom"], "turn_indices": [0, 0]}
    records = records_of(result)
    assert arrays_of(records) == result
    assert with_records({"completed": 1}, records) == {"completed": 1, **result}
    good, bad = csv_row(records[0]), csv_row(records[1])
    assert good["ttft_ms"] == 100.0 and good["tpot_ms"] == 50.0 and good["mean_itl_ms"] == 30.0
    assert good["chunks"] == 3 and good["e2el_ms"] == 200.0
    assert bad["ttft_ms"] is None and bad["tpot_ms"] is None and bad["error"] == "http_500"
