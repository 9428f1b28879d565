"""`sluice safety report`: guard verdicts from the request log, with shares and example ids."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from sluice.cli import app
from tests.support.gateway import records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream
from tests.support.polling import wait_for

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_the_report_counts_blocks_and_what_monitor_mode_would_have_done(upstream: tuple[OpenAIUpstream, str],
                                                                       tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    guards = {"weapons": {"type": "keyword", "words": ["bomb"], "category": "weapons"},
              "trial": {"type": "keyword", "words": ["cake"], "mode": "monitor", "category": "food"}}
    config = upstream_config(upstream[1], db, safety={"guards": guards}, models={
        "m": {"targets": [{"backend": "up", "model": "up-model"}], "guards": ["weapons", "trial"]}})
    texts = ["a bomb", "a cake", "more cake", "plain words"]
    with run_gateway(config) as gw:
        for index, text in enumerate(texts):
            httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": f"q{index}"},
                       json={"model": "m", "messages": [{"role": "user", "content": text}]})
    wait_for(lambda: len(records(db)) == len(texts), what="the log rows")
    ids = {record.client_request_id: record.request_id for record in records(db)}
    result = runner.invoke(app, ["safety", "report", "--db", f"sqlite:///{db}", "--json"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = {(row["guard"], row["direction"], row["mode"]): row for row in json.loads(result.output)["rows"]}
    assert set(rows) == {("weapons", "input", "enforce"), ("trial", "input", "monitor"),
                         ("trial", "output", "monitor")}
    blocked = rows[("weapons", "input", "enforce")]
    assert (blocked["requests"], blocked["model_requests"], blocked["share"]) == (1, 4, 0.25)
    assert blocked["examples"] == [ids["q0"]]
    would = rows[("trial", "input", "monitor")]
    assert would["requests"] == 2 and set(would["examples"]) == {ids["q1"], ids["q2"]}
    table = runner.invoke(app, ["safety", "report", "--db", f"sqlite:///{db}"], env=WIDE)
    assert table.exit_code == 0 and "weapons" in table.output and "25.00%" in table.output
    empty = runner.invoke(app, ["safety", "report", "--db", f"sqlite:///{db}", "--model", "other"], env=WIDE)
    assert empty.exit_code == 0 and "No guard verdicts" in empty.output
    bad = runner.invoke(app, ["safety", "report", "--db", f"sqlite:///{db}", "--since", "yesterday"], env=WIDE)
    assert bad.exit_code == 2 and "--since" in bad.output
