"""`sluice prompts` against a real gateway (its admin API on SQLite): create text and chat versions, list, show,
label, history, diff, render, rollback, a git folder round trip between two gateways; every change announced on
the shared state; bad input is a clear error (exit 2) and the API answers 404 / 400 / 409 naming what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.prompts import CHANGES_CHANNEL
from tests.support.gateway import RunningGateway, run_gateway, upstream_config

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture
def gateway(upstream: tuple[object, str], tmp_path: Path) -> Iterator[RunningGateway]:
    with run_gateway(upstream_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        yield gw


def prompts(gw: RunningGateway, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["prompts", *args, "--url", gw.url], env=WIDE)
    return result.exit_code, result.output


def announced(gw: RunningGateway) -> list[str | None]:
    """The names the gateway announces on its shared state from now on (published before each answer)."""
    heard: list[str | None] = []
    assert gw.state.shared_state is not None
    gw.state.shared_state.subscribe(CHANGES_CHANNEL, heard.append)
    return heard


def test_create_label_diff_render_rollback(gateway: RunningGateway, tmp_path: Path) -> None:
    heard = announced(gateway)
    code, out = prompts(gateway, "create", "support", "--template", "Hello {{ name }}, how can I help?",
                        "--var", "name", "--config", "temperature=0.2", "--semver", "1.0.0", "--message", "first",
                        "--author", "ana")
    assert code == 0 and "created support@1" in out and "Hello {{ name }}, how can I help?" in out, out
    chat = tmp_path / "chat.yaml"
    chat.write_text("- role: system\n  content: You are a {{ tone }} agent.\n- role: user\n  content: '{{ name }}'\n")
    code, out = prompts(gateway, "create", "support", "--messages-file", str(chat), "--var", "name", "--var",
                        "tone=friendly", "--var", "unused=", "--config", "model=gpt-4o-mini", "--config",
                        'response_format={"type": "json_object"}', "--label", "staging", "--message", "chat now")
    assert code == 0 and "created support@2" in out and "'unused' is declared but no template uses it" in out, out
    shown = httpx.get(gateway.url + "/admin/prompts/support/versions/staging").json()
    assert shown["config"] == {"model": "gpt-4o-mini", "response_format": {"type": "json_object"}}
    assert shown["labels"] == ["staging", "latest"] and shown["kind"] == "chat"

    code, out = prompts(gateway, "list")
    assert code == 0 and "support" in out and "chat" in out and "staging → 2" in out, out
    code, out = prompts(gateway, "show", "support")
    assert code == 0 and "1.0.0" in out and "chat now" in out and "staging, latest" in out, out
    code, out = prompts(gateway, "show", "support@1.0.0")
    assert code == 0 and "Hello {{ name }}, how can I help?" in out and "temperature" in out, out

    code, out = prompts(gateway, "label", "support", "production", "1", "--reason", "first release")
    assert code == 0 and "support@production: — → 1" in out, out
    code, out = prompts(gateway, "label", "support", "production", "staging", "--actor", "bo", "--reason", "promote")
    assert code == 0 and "support@production: 1 → 2" in out, out
    code, out = prompts(gateway, "history", "support", "--label", "production")
    assert code == 0 and "first release" in out and "promote" in out and "bo" in out, out

    code, out = prompts(gateway, "diff", "support@1", "production")
    assert code == 0 and "-Hello {{ name }}, how can I help?" in out and "+### system" in out, out
    assert "kind" in out and "config.temperature" in out and "variables.tone" in out, out

    code, out = prompts(gateway, "render", "support@production", "--var", "name=Ana")
    assert code == 0 and "You are a friendly agent." in out and "\nAna\n" in out, out
    variables = tmp_path / "vars.json"
    variables.write_text('{"name": "Bo", "tone": "calm"}')
    code, out = prompts(gateway, "render", "support@2", "--vars", str(variables), "--json")
    assert code == 0, out
    assert json.loads(out)["messages"] == [{"role": "system", "content": "You are a calm agent."},
                                           {"role": "user", "content": "Bo"}]
    code, out = prompts(gateway, "render", "support@1.0.0", "--var", "name=Ana")
    assert code == 0 and "Hello Ana, how can I help?" in out and '"temperature": 0.2' in out, out

    code, out = prompts(gateway, "rollback", "support", "--reason", "bad answers")
    assert code == 0 and "support@production: 2 → 1 (rollback)" in out, out
    events = httpx.get(gateway.url + "/admin/prompts/support/labels?label=production").json()["data"]
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events] == [
        ("move", None, 1), ("move", 1, 2), ("rollback", 2, 1)]
    code, out = prompts(gateway, "label", "support", "staging", "--delete")
    assert code == 0 and "support@staging: 2 → removed" in out, out
    assert heard == ["support"] * 6  # two versions, two moves, a rollback, a delete


def test_a_folder_round_trips_between_two_gateways(gateway: RunningGateway, upstream: tuple[object, str],
                                                   tmp_path: Path) -> None:
    assert prompts(gateway, "create", "greet", "--template", "Hi {{ name }}\nBye\n", "--var", "name",
                   "--label", "production")[0] == 0
    assert prompts(gateway, "create", "greet", "--template", "Hey {{ name }}", "--var", "name=you",
                   "--semver", "2.0.0")[0] == 0
    first = tmp_path / "first"
    code, out = prompts(gateway, "export", str(first))
    assert code == 0 and "1 prompts to" in out and "3 files written" in out, out
    assert (first / "greet" / "v1.yaml").read_text() == ("kind: text\nvariables:\n- name\n"
                                                        "template: |\n  Hi {{ name }}\n  Bye\n")

    with run_gateway(upstream_config(upstream[1], tmp_path / "other.sqlite")) as other:
        heard = announced(other)
        code, out = prompts(other, "import", str(first), "--actor", "ci")
        assert code == 0 and "created greet@1, greet@2" in out and "greet@production → 1" in out, out
        assert heard == ["greet"]
        code, out = prompts(other, "import", str(first))
        assert code == 0 and "created nothing; 2 versions unchanged; labels moved: none" in out, out
        second = tmp_path / "second"
        assert prompts(other, "export", str(second))[0] == 0
        event = httpx.get(other.url + "/admin/prompts/greet/labels").json()["data"][0]
        assert (event["actor"], event["reason"]) == ("ci", f"import from {first}")
    assert {path.name: path.read_text() for path in (second / "greet").iterdir()} == {
        path.name: path.read_text() for path in (first / "greet").iterdir()}

    (first / "greet" / "v2.yaml").write_text("variables: [name]\ntemplate: Hey there {{ name }}\n")
    code, out = prompts(gateway, "import", str(first))
    assert code == 2 and "greet/v2.yaml differs from greet@2 in the store" in out, out
    (first / "greet" / "v2.yaml").write_text("template: [broken\n")
    code, out = prompts(gateway, "import", str(first))
    assert code == 2 and "greet/v2.yaml: not valid YAML" in out, out


@pytest.mark.parametrize("command", ["create", "list", "show", "diff", "label", "rollback", "history", "render",
                                     "import", "export"])
def test_every_command_explains_itself(command: str) -> None:
    result = runner.invoke(app, ["prompts", command, "--help"], env=WIDE)
    assert result.exit_code == 0 and "Usage" in result.output and "--url" in result.output


def test_bad_input_is_a_clear_error(gateway: RunningGateway) -> None:
    code, out = prompts(gateway, "create", "support")
    assert code == 2 and "give the prompt one way: --template TEXT" in out
    code, out = prompts(gateway, "create", "support", "--template", "Hello {{ name }}")
    assert code == 2 and "template uses undeclared variable 'name': declare it" in out, out
    code, out = prompts(gateway, "create", "support", "--template", "{{ x.__class__ }}", "--var", "x")
    assert code == 2 and "private attribute '__class__'" in out, out
    code, out = prompts(gateway, "create", "support", "--template", "hi", "--config", "temprature=0.2")
    assert code == 2 and "unknown key 'temprature'" in out, out
    code, out = prompts(gateway, "show", "nothing@1")
    assert code == 2 and "404" in out and "unknown prompt 'nothing'" in out, out
    assert prompts(gateway, "create", "support", "--template", "Hi {{ name }}", "--var", "name",
                   "--semver", "1.0.0")[0] == 0
    code, out = prompts(gateway, "render", "support", "--var", "nmae=Ana")
    assert code == 2 and "unknown variable 'nmae'" in out, out
    code, out = prompts(gateway, "render", "support")
    assert code == 2 and "missing variable 'name'" in out, out
    code, out = prompts(gateway, "label", "support", "production", "7")
    assert code == 2 and "404" in out and "no version 7; its versions run from 1 to 1" in out, out
    code, out = prompts(gateway, "label", "support", "Bad Label!", "1")
    assert code == 2 and "400" in out and "bad label" in out, out
    code, out = prompts(gateway, "rollback", "support")
    assert code == 2 and "404" in out and "no label 'production'" in out, out
    code, out = prompts(gateway, "diff", "support", "2")
    assert code == 2 and "sluice prompts diff support@1 support@2" in out, out

    base = gateway.url + "/admin/prompts/support"
    response = httpx.post(base + "/versions", json={"template": "hi", "tempalte": "x"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "tempalte"
    response = httpx.post(base + "/versions", json={"template": "x", "semver": "1.0.0"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "semver_taken"
    response = httpx.post(base + "/render", json={"ref": 1, "variables": {"name": "a", "extra": "b"}})
    error = response.json()["error"]
    assert response.status_code == 400 and (error["code"], error["param"]) == ("unknown_variables", "variables.extra")
    response = httpx.post(base + "/versions", json={"template": "{{ a }} {{ b }}", "variables": ["a"]})
    error = response.json()["error"]
    assert response.status_code == 400 and (error["code"], error["param"]) == ("undeclared_variables", "variables.b")
    response = httpx.put(base + "/labels/latest", json={"version": 1})
    assert response.status_code == 400 and "always means the newest version" in response.json()["error"]["message"]
    response = httpx.get(gateway.url + "/admin/prompts/nothing/versions")
    assert response.status_code == 404 and "prompts: support" in response.json()["error"]["message"]


def test_with_a_master_key_the_registry_needs_it(upstream: tuple[object, str], tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "keyed.sqlite", server={"master_key": "sk-master-test"})
    with run_gateway(config) as keyed:
        code, out = prompts(keyed, "create", "support", "--template", "hi")
        assert code == 2 and "401" in out and "pass --master-key or set SLUICE_MASTER_KEY" in out, out
        result = runner.invoke(app, ["prompts", "create", "support", "--template", "hi", "--url", keyed.url],
                               env={**WIDE, "SLUICE_MASTER_KEY": "sk-master-test"})
        assert result.exit_code == 0 and "created support@1" in result.output, result.output
        assert httpx.get(keyed.url + "/admin/prompts/export").status_code == 401
