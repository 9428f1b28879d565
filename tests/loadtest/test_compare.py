"""`bench compare`: the rule grammar on hand-built results, and the CI exit codes through the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.loadtest.compare import CompareError, compare_results, parse_rule, resolve_metric

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def result(**changes: float) -> dict[str, Any]:
    base: dict[str, Any] = {"num_prompts": 100, "completed": 100, "failed": 0, "duration": 10.0,
                            "request_throughput": 10.0, "request_goodput": None, "output_throughput": 1280.0,
                            "total_token_throughput": 11520.0}
    for name in ("ttft", "tpot", "itl", "e2el"):
        base |= {f"mean_{name}_ms": 100.0, f"median_{name}_ms": 90.0, f"std_{name}_ms": 5.0, f"p99_{name}_ms": 200.0}
    return base | changes


@pytest.mark.parametrize(("alias", "field"), [("ttft_p99", "p99_ttft_ms"), ("tpot_mean", "mean_tpot_ms"),
                                              ("e2el_median", "median_e2el_ms"), ("itl_p99.9", "p99.9_itl_ms"),
                                              ("throughput", "request_throughput"), ("goodput", "request_goodput"),
                                              ("p99_ttft_ms", "p99_ttft_ms"), ("failed", "failed")])
def test_short_aliases_resolve_to_result_fields(alias: str, field: str) -> None:
    assert resolve_metric(alias) == field


@pytest.mark.parametrize(("rule", "candidate", "tripped"), [
    ("ttft_p99 > +10%", {"p99_ttft_ms": 220.0}, False),  # exactly +10% is not more than +10%
    ("ttft_p99 > +10%", {"p99_ttft_ms": 220.1}, True),
    ("ttft_p99 >= 10%", {"p99_ttft_ms": 220.0}, True),
    ("p99_ttft_ms > +5ms", {"p99_ttft_ms": 205.5}, True),
    ("p99_ttft_ms > +5ms", {"p99_ttft_ms": 204.0}, False),
    ("e2el_p99 > +0.1s", {"p99_e2el_ms": 301.0}, True),
    ("request_throughput < -5%", {"request_throughput": 9.4}, True),
    ("request_throughput < -5%", {"request_throughput": 9.6}, False),
    ("failed > 0", {"failed": 1, "completed": 99}, True),
    ("failed > 0", {}, False),
    ("p99_ttft_ms > 250", {"p99_ttft_ms": 240.0}, False),  # unsigned: the candidate's own value
    ("error_rate > 0.01", {"failed": 2, "completed": 98}, True),
    ("tpot_mean <= -1ms", {"mean_tpot_ms": 98.0}, True),
])
def test_rules(rule: str, candidate: dict[str, float], tripped: bool) -> None:
    a, b = result(), result(**candidate)
    assert parse_rule(rule, (a, b)).trips(a, b) is tripped


def test_relative_change_from_zero_is_infinite() -> None:
    a, b = result(), result(failed=3)
    assert parse_rule("failed > +50%").observed(a, b) == math.inf
    assert parse_rule("failed > +50%").trips(a, b)
    assert parse_rule("failed > +50%").observed(a, a) == 0.0


@pytest.mark.parametrize(("rule", "message"), [
    ("ttft_p99 >> 10%", "is not METRIC OP"),
    ("ttft_p99 > ten", "is not METRIC OP"),
    ("latency > +10%", "unknown metric 'latency'"),
    ("ttft_p95 > +10%", "p95_ttft_ms is in neither result"),
    ("request_throughput > +5ms", "ms only suits a latency"),
])
def test_bad_rules_name_the_problem(rule: str, message: str) -> None:
    with pytest.raises(CompareError, match=message):
        parse_rule(rule, (result(), result()))


def test_a_null_metric_cannot_be_judged() -> None:
    with pytest.raises(CompareError, match="request_goodput is null in A"):
        parse_rule("goodput < -5%", (result(), result())).trips(result(), result())


def test_delta_table_knows_which_way_is_better() -> None:
    deltas = {d.metric: d for d in compare_results(result(), result(p99_ttft_ms=300.0, request_throughput=12.0))}
    assert deltas["p99_ttft_ms"].change == 100.0 and deltas["p99_ttft_ms"].change_pct == 50.0
    assert deltas["p99_ttft_ms"].improved is False and deltas["request_throughput"].improved is True
    assert deltas["mean_ttft_ms"].improved is None
    assert "request_goodput" not in deltas  # null in both: nothing to compare
    assert deltas["error_rate"].a == 0.0


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result()))
    b.write_text(json.dumps(result(p99_ttft_ms=230.0, request_throughput=9.0)))
    return a, b


def compare(*args: str) -> Any:
    return runner.invoke(app, ["bench", "compare", *args], env=WIDE)


def test_cli_exit_0_when_no_rule_trips(files: tuple[Path, Path]) -> None:
    outcome = compare(str(files[0]), str(files[1]), "--fail-if", "ttft_p99 > +20%", "--fail-if", "failed > 0")
    assert outcome.exit_code == 0, outcome.output
    assert "p99_ttft_ms" in outcome.output and "+15.0%" in outcome.output


def test_cli_exit_1_when_a_rule_trips(files: tuple[Path, Path]) -> None:
    outcome = compare(str(files[0]), str(files[1]), "--fail-if", "ttft_p99 > +10%", "--fail-if",
                      "throughput < -20%")
    assert outcome.exit_code == 1
    assert "TRIPPED" in outcome.output and "ttft_p99 > +10%" in outcome.output


def test_cli_json_output(files: tuple[Path, Path]) -> None:
    outcome = compare(str(files[0]), str(files[1]), "--json", "--fail-if", "throughput < -5%")
    assert outcome.exit_code == 1
    report = json.loads(outcome.stdout)
    assert report["tripped"] is True
    assert report["rules"] == [{"rule": "throughput < -5%", "metric": "request_throughput", "mode": "relative",
                                "observed": pytest.approx(-10.0), "threshold": -5.0, "tripped": True}]
    ttft = next(m for m in report["metrics"] if m["metric"] == "p99_ttft_ms")
    assert ttft == {"metric": "p99_ttft_ms", "a": 200.0, "b": 230.0, "delta": 30.0, "delta_pct": pytest.approx(15.0)}


def test_cli_exit_2_names_the_bad_input(files: tuple[Path, Path], tmp_path: Path) -> None:
    missing = compare(str(files[0]), str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "nope.json" in missing.output
    unknown = compare(str(files[0]), str(files[1]), "--fail-if", "speed < -5%")
    assert unknown.exit_code == 2 and "unknown metric 'speed'" in unknown.output
    (tmp_path / "sweep.json").write_text(json.dumps({"sweep": {}, "steps": []}))
    sweep = compare(str(files[0]), str(tmp_path / "sweep.json"))
    assert sweep.exit_code == 2 and "sweep result" in sweep.output
    (tmp_path / "junk.json").write_text("{not json")
    assert compare(str(tmp_path / "junk.json"), str(files[1])).exit_code == 2
