"""`sluice logs tail` and `sluice logs show` on a seeded SQLite request log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sluice.cli.logs import itl_summary, logs_app
from sluice.records import RequestRecord
from sluice.store import create_engine, migrate, request_log

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def make_record(index: int, **overrides: object) -> RequestRecord:
    values: dict[str, object] = dict(
        request_id=f"req-{index:03d}", created_at=time.time() - 100 + index, endpoint="chat",
        model="llama" if index % 2 else "smol", target="vllm-a", backend_type="openai",
        upstream_model="meta-llama/Llama-3.1-8B-Instruct", stream=True, status_code=200, prompt_tokens=10 + index,
        completion_tokens=20 + index, ttft_s=0.0421, tpot_s=0.0052, itl_s=(0.004, 0.005, 0.006, 0.007),
        e2e_s=0.25, upstream_s=0.24, overhead_s=0.0012, request_body='{"messages":[{"role":"user","content":"hi"}]}',
        response_body="Hello [bold]there[/bold]!",
    )
    values.update(overrides)
    return RequestRecord(**values)  # type: ignore[arg-type]


def insert(url: str, records: list[RequestRecord]) -> None:
    async def work() -> None:
        engine = create_engine(url)
        try:
            await request_log.insert_many(engine, records)
        finally:
            await engine.dispose()

    asyncio.run(work())


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sluice.db'}"
    asyncio.run(migrate(url))
    insert(url, [make_record(index) for index in range(30)])
    return url


def test_tail_shows_the_latest_requests_oldest_first(db_url: str) -> None:
    result = runner.invoke(logs_app, ["tail", "--db", db_url, "-n", "3"], env=WIDE)
    assert result.exit_code == 0, result.output
    positions = [result.output.index(f"req-{index:03d}") for index in (27, 28, 29)]
    assert positions == sorted(positions)
    assert "req-026" not in result.output
    for header in ("TTFT", "TPOT", "E2E", "ovh", "status"):
        assert header in result.output
    assert "42" in result.output and "5.2" in result.output  # TTFT and TPOT in ms


def test_tail_filters_by_model(db_url: str) -> None:
    result = runner.invoke(logs_app, ["tail", "--db", db_url, "-n", "5", "--model", "smol", "--json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["request_id"] for row in rows] == ["req-020", "req-022", "req-024", "req-026", "req-028"]


def test_tail_json_prints_one_object_per_line(db_url: str) -> None:
    result = runner.invoke(logs_app, ["tail", "--db", db_url, "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["request_id"] for row in rows] == ["req-028", "req-029"]
    assert rows[-1]["itl_s"] == [0.004, 0.005, 0.006, 0.007]
    assert rows[-1]["created_at_iso"].endswith("+00:00")


def test_tail_reads_the_store_url_from_a_config_file(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(f"store:\n  url: {db_url}\n")
    result = runner.invoke(logs_app, ["tail", "--config", str(config), "-n", "1", "--json",
                                      "--db", "sqlite:///ignored.db"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["request_id"] == "req-029"


def test_tail_on_an_empty_log_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    asyncio.run(migrate(url))
    result = runner.invoke(logs_app, ["tail", "--db", url])
    assert result.exit_code == 0
    assert "no requests logged yet" in result.output


def test_a_missing_database_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    result = runner.invoke(logs_app, ["tail", "--db", f"sqlite:///{path}"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not path.exists()


def test_a_database_without_the_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    path.touch()
    result = runner.invoke(logs_app, ["show", "x", "--db", f"sqlite:///{path}"])
    assert result.exit_code == 1
    assert "cannot read the request log" in result.output


def test_an_unsupported_url_exits_2() -> None:
    result = runner.invoke(logs_app, ["tail", "--db", "mysql://u@h/db"])
    assert result.exit_code == 2
    assert "unsupported database" in result.output


def test_follow_prints_requests_as_they_are_written(db_url: str) -> None:
    def write_later() -> None:
        time.sleep(0.3)
        insert(db_url, [make_record(100), make_record(101)])

    writer = threading.Thread(target=write_later)
    writer.start()
    result = runner.invoke(logs_app, ["tail", "--db", db_url, "-n", "1", "--follow", "--interval", "0.05",
                                      "--stop-after", "1.5", "--json"])
    writer.join()
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["request_id"] for line in result.output.splitlines()]
    assert ids == ["req-029", "req-100", "req-101"]


def test_show_prints_every_field_the_itl_summary_and_the_bodies(db_url: str) -> None:
    result = runner.invoke(logs_app, ["show", "req-007", "--db", db_url], env=WIDE)
    assert result.exit_code == 0, result.output
    for expected in ("request_id", "req-007", "upstream_model", "meta-llama/Llama-3.1-8B-Instruct",
                     "ttft_s", "overhead_s", "client_ip", "n=4", "p99", "request body", '"role": "user"',
                     "response body", "Hello [bold]there[/bold]!"):  # markup in bodies is printed, not rendered
        assert expected in result.output, expected


def test_show_prints_each_annotation_as_a_row(db_url: str) -> None:
    insert(db_url, [make_record(200, annotations={"router.choice": "hard", "router.score": 0.75,
                                                  "guard.verdicts": [{"layer": "pii", "action": "redact"}]})])
    result = runner.invoke(logs_app, ["show", "req-200", "--db", db_url], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for key, shown in (("router.choice", '"hard"'), ("router.score", "0.75"),
                       ("guard.verdicts", '[{"layer": "pii", "action": "redact"}]')):
        assert any(line.split()[:1] == [key] and shown in line for line in lines), (key, result.output)
    as_json = json.loads(runner.invoke(logs_app, ["show", "req-200", "--db", db_url, "--json"]).output)
    assert as_json["annotations"]["router.choice"] == "hard"


def test_show_json_round_trips_the_record(db_url: str) -> None:
    result = runner.invoke(logs_app, ["show", "req-003", "--db", db_url, "--json"])
    data = json.loads(result.output)
    data.pop("created_at_iso")
    data["itl_s"] = tuple(data["itl_s"])
    stored = RequestRecord(**data)
    assert stored.request_id == "req-003" and stored.prompt_tokens == 13 and stored.stream is True


def test_show_finds_a_request_by_the_clients_own_id_too(db_url: str) -> None:
    insert(db_url, [make_record(101, client_request_id="trace-a"), make_record(102, client_request_id="trace-b"),
                    make_record(103, client_request_id="trace-b")])
    by_gateway_id = runner.invoke(logs_app, ["show", "req-101", "--db", db_url, "--json"])
    by_client_id = runner.invoke(logs_app, ["show", "trace-a", "--db", db_url, "--json"])
    assert json.loads(by_gateway_id.stdout) == json.loads(by_client_id.stdout)
    assert json.loads(by_client_id.stdout)["client_request_id"] == "trace-a"

    shared = runner.invoke(logs_app, ["show", "trace-b", "--db", db_url, "--json"], env=WIDE)
    assert shared.exit_code == 0, shared.output
    assert json.loads(shared.stdout)["request_id"] == "req-103"  # the newest of the requests carrying it
    assert "showing req-103 (the newest)" in shared.stderr and "req-102" in shared.stderr


def test_show_an_unknown_id_exits_1(db_url: str) -> None:
    result = runner.invoke(logs_app, ["show", "req-999", "--db", db_url])
    assert result.exit_code == 1
    assert "no request with id 'req-999'" in result.output


def test_itl_summary() -> None:
    assert itl_summary(()) == "-"
    summary = itl_summary(tuple(i / 1000 for i in range(1, 101)))
    assert summary.startswith("n=100  mean 50.50  p50 51.00")
    assert summary.endswith("max 100.00 ms")


def test_every_command_and_option_has_help() -> None:
    group = typer.main.get_command(logs_app)
    assert group.help
    commands = group.commands  # type: ignore[attr-defined]
    assert set(commands) == {"tail", "show"}
    for name, command in commands.items():
        assert command.help, name
        for parameter in command.params:
            assert parameter.help, f"{name} {parameter.name}"  # options and the ID argument alike
