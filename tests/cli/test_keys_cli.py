"""`sluice keys …` against a running gateway's admin API, as an operator would use it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from tests.api.test_keys_admin import MASTER, chat, keyed_config
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.openai_server import OpenAIUpstream

runner = CliRunner()
WIDE = {"COLUMNS": "220"}


@pytest.fixture
def keyed_gateway(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> Iterator[RunningGateway]:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        yield gw


def keys(gw: RunningGateway, *args: str, master_key: str | None = MASTER) -> tuple[int, str]:
    env = {**WIDE, "SLUICE_URL": gw.url}
    if master_key is not None:
        env["SLUICE_MASTER_KEY"] = master_key
    result = runner.invoke(app, ["keys", *args], env=env)
    return result.exit_code, result.output


def test_create_shows_the_secret_once_and_the_key_works(keyed_gateway: RunningGateway) -> None:
    code, out = keys(keyed_gateway, "create", "search-bot", "--team", "search", "--model", "m", "--rpm", "60",
                     "--budget-day", "5", "--expires", "30d", "--meta", "ticket=OPS-1", "--json")
    assert code == 0, out
    created = json.loads(out)
    secret, key = created["secret"], created["key"]
    assert (key["name"], key["team"], key["models"], key["rpm"], key["budget_day_usd"]) == (
        "search-bot", "search", ["m"], 60, 5.0)
    assert key["metadata"] == {"ticket": "OPS-1"}
    assert key["expires_at"] == pytest.approx(time.time() + 30 * 86_400, abs=60)
    assert chat(keyed_gateway, secret).status_code == 200

    code, out = keys(keyed_gateway, "create", "other")
    assert code == 0 and "cannot be shown again" in out and "sk-sluice-" in out


def test_list_show_update_rotate_revoke(keyed_gateway: RunningGateway) -> None:
    code, out = keys(keyed_gateway, "create", "svc", "--team", "ads", "--rpm", "10", "--json")
    key_id, secret = json.loads(out)["key"]["id"], json.loads(out)["secret"]
    keys(keyed_gateway, "create", "other", "--team", "search")
    assert chat(keyed_gateway, secret).status_code == 200

    code, out = keys(keyed_gateway, "list", "--team", "ads", "--json")
    assert code == 0 and [k["id"] for k in json.loads(out)["data"]] == [key_id]
    code, out = keys(keyed_gateway, "list")
    assert code == 0 and key_id in out and "2 virtual keys" in out

    code, out = keys(keyed_gateway, "show", key_id, "--json")
    assert code == 0 and json.loads(out)["spend"]["requests"] >= 0
    code, out = keys(keyed_gateway, "show", key_id)
    assert code == 0 and "spend (request log)" in out and "ads" in out

    code, out = keys(keyed_gateway, "update", key_id, "--tpm", "5000", "--clear", "rpm", "--json")
    assert code == 0, out
    assert (json.loads(out)["tpm"], json.loads(out)["rpm"]) == (5000, None)

    code, out = keys(keyed_gateway, "rotate", key_id, "--grace", "1h", "--json")
    new_secret = json.loads(out)["secret"]
    assert chat(keyed_gateway, secret).status_code == 200  # within the grace period
    assert chat(keyed_gateway, new_secret).status_code == 200

    code, out = keys(keyed_gateway, "revoke", new_secret)  # a pasted secret is read as its id
    assert code == 0 and f"revoked {key_id}" in out
    assert chat(keyed_gateway, new_secret).status_code == 401
    assert chat(keyed_gateway, secret).status_code == 401  # revoking ends the grace period too
    code, out = keys(keyed_gateway, "list", "--all", "--json")
    assert {k["id"]: k["status"] for k in json.loads(out)["data"]}[key_id] == "revoked"


def test_errors_are_clear_and_exit_non_zero(keyed_gateway: RunningGateway) -> None:
    code, out = keys(keyed_gateway, "list", master_key=None)
    assert code == 1 and "401" in out and "--master-key" in out
    code, out = keys(keyed_gateway, "show", "000000000000")
    assert code == 1 and "No virtual key with id" in out
    code, out = keys(keyed_gateway, "update", "000000000000")
    assert code == 2 and "nothing to change" in out
    code, out = keys(keyed_gateway, "update", "000000000000", "--clear", "colour")
    assert code == 2 and "expected one of" in out
    code, out = keys(keyed_gateway, "create", "x", "--expires", "soon")
    assert code == 2 and "--expires" in out
    code, out = keys(keyed_gateway, "rotate", "000000000000", "--grace", "a while")
    assert code == 2 and "--grace" in out


def test_an_unreachable_gateway_is_named() -> None:
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["keys", "list", "--url", url], env=WIDE)
    assert result.exit_code == 1 and "cannot reach the gateway" in result.output and url in result.output
