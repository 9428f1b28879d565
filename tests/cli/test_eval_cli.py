"""`sluice eval run` and `sluice eval show` against a real gateway and a scripted upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from tests.evals.test_runner import SUITE
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import free_port, serve_app

runner = CliRunner()


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "capitals.yaml"
    path.write_text(SUITE)
    return path


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[ScriptedUpstream, str]]:
    scripted = ScriptedUpstream(["Paris", "Tokyo", "Barcelona"])
    with serve_app(scripted.app()) as url, run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        yield scripted, gw.url


def test_run_writes_the_results_and_prints_the_summary(suite_path: Path, gateway: tuple[ScriptedUpstream, str],
                                                       tmp_path: Path) -> None:
    _, url = gateway
    out = tmp_path / "results.jsonl"
    result = runner.invoke(app, ["eval", "run", str(suite_path), "--model", "m", "--url", url, "--concurrency", "1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "all cases" in result.output and "2/3" in result.output and "errors 0" in result.output
    lines = out.read_bytes().splitlines()
    assert orjson.loads(lines[0])["model"] == "m" and len(lines) == 4


def test_resume_skips_the_cases_already_recorded(suite_path: Path, gateway: tuple[ScriptedUpstream, str],
                                                 tmp_path: Path) -> None:
    scripted, url = gateway
    out = tmp_path / "results.jsonl"
    assert runner.invoke(app, ["eval", "run", str(suite_path), "-m", "m", "--url", url, "--concurrency", "1",
                               "--out", str(out)]).exit_code == 0
    out.write_bytes(b"\n".join(out.read_bytes().splitlines()[:2]) + b"\n")  # as if interrupted after one case
    scripted.requests.clear()
    result = runner.invoke(app, ["eval", "run", str(suite_path), "-m", "m", "--url", url, "--out", str(out),
                                 "--resume"])
    assert result.exit_code == 0, result.output
    assert len(scripted.requests) == 2
    ids = [orjson.loads(line)["case_id"] for line in out.read_bytes().splitlines()[1:]]
    assert sorted(ids) == ["france", "japan", "spain"]


def test_resume_refuses_a_file_of_another_model(suite_path: Path, gateway: tuple[ScriptedUpstream, str],
                                                tmp_path: Path) -> None:
    _, url = gateway
    out = tmp_path / "results.jsonl"
    assert runner.invoke(app, ["eval", "run", str(suite_path), "-m", "m", "--url", url, "--out",
                               str(out)]).exit_code == 0
    result = runner.invoke(app, ["eval", "run", str(suite_path), "-m", "other", "--url", url, "--out", str(out),
                                 "--resume"])
    assert result.exit_code == 2 and "model 'm'" in result.output


def test_a_malformed_suite_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "input": "x", "expected": 1, "scorers": ["numeric"]}\n'
                    '{"id": "b", "input": "y", "scorers": ["fuzzy"]}\n')
    result = runner.invoke(app, ["eval", "run", str(path), "-m", "m", "--out", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 2
    assert "bad.jsonl:2: cases.1.scorers.0.type: unknown scorer 'fuzzy'" in " ".join(result.output.split())


def test_an_unreachable_gateway_exits_2(suite_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["eval", "run", str(suite_path), "-m", "m", "--url",
                                 f"http://127.0.0.1:{free_port()}", "--out", str(out)])
    assert result.exit_code == 2 and "cannot reach the gateway" in result.output
    assert not out.exists()


def test_show_failed_lists_the_failing_cases_with_their_reasons(
        suite_path: Path, gateway: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    _, url = gateway
    out = tmp_path / "results.jsonl"
    runner.invoke(app, ["eval", "run", str(suite_path), "-m", "m", "--url", url, "--concurrency", "1",
                        "--out", str(out)])
    result = runner.invoke(app, ["eval", "show", str(out), "--failed"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "1 failing case" in result.output and "spain" in result.output
    assert "expected 'Madrid', got 'Barcelona'" in result.output
