"""vLLM's structured-output extras (`structured_outputs`, `guided_*`): checked at the edge, passed through to
servers that take them, asked for in the prompt and validated elsewhere; a grammar nowhere to go is a 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.errors import InvalidRequest
from sluice.structured import check_constraints
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"structured_outputs": "yes"}, "structured_outputs", "must be an object"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice", "non-empty list of strings"),
    ({"guided_choice": ["a", 1]}, "guided_choice", "non-empty list of strings"),
    ({"guided_regex": "(unclosed"}, "guided_regex", "not a valid regular expression"),
    ({"guided_regex": r"^(\w+\s)*\w+$"}, "guided_regex", "exponential time"),
    ({"guided_json": '{"type": "object"}'}, "guided_json", "not a string"),
    ({"structured_outputs": {"json": {"type": "objekt"}}}, "structured_outputs.json.type", "is not valid"),
    ({"guided_choice": ["a"], "guided_regex": "a"}, "guided_choice", "one structured-output constraint"),
    ({"guided_choice": ["a"], "response_format": {"type": "json_object"}}, "response_format", "one structured"),
    ({"guided_grammar": "x" * 70_000}, "guided_grammar", "at most 65,536"),
])
def test_malformed_constraints_are_400s_naming_the_field(body: dict[str, Any], param: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        check_constraints(body)
    assert error.value.param == param and says in error.value.message


def test_well_formed_constraints_pass() -> None:
    for body in ({"structured_outputs": {"choice": ["yes", "no"]}}, {"guided_regex": r"^[A-Z]{2}\d{6}$"},
                 {"guided_json": {"type": "object"}}, {"structured_outputs": {"grammar": "root ::= 'a'"}},
                 {"guided_choice": ["a"], "response_format": {"type": "text"}}):
        check_constraints(body)


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream(["yes"])
    with serve_app(upstream.app()) as url:
        yield upstream, url


def ask(gw: Any, **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "Is it raining?"}], **extra})


def gateway(url: str, tmp_path: Path, structured_output: str = "auto") -> Any:
    config = upstream_config(url, tmp_path / "log.db")
    config["backends"]["up"]["structured_output"] = structured_output
    return run_gateway(config)


def test_a_vllm_server_gets_the_constraint_as_sent(scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.owned_by = "vllm"
    with gateway(url, tmp_path) as gw:
        response = ask(gw, structured_outputs={"choice": ["yes", "no"]})
    assert response.json()["structured_output"] == {"valid": True, "mode": "guided", "attempts": 1}
    assert upstream.requests[0]["structured_outputs"] == {"choice": ["yes", "no"]}


def test_an_answer_outside_the_choices_is_reasked(scripted: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["Maybe, hard to say.", "no"]
    with gateway(url, tmp_path) as gw:
        response = ask(gw, guided_choice=["yes", "no"])
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "no" and body["structured_output"]["mode"] == "reasked"
    assert "is not one of yes | no" in upstream.requests[1]["messages"][-1]["content"]


def test_a_backend_without_the_extras_gets_them_in_the_prompt(scripted: tuple[ScriptedUpstream, str],
                                                              tmp_path: Path) -> None:
    upstream, url = scripted
    upstream.texts = ["  AB123456\n"]
    with gateway(url, tmp_path, structured_output="none") as gw:
        response = ask(gw, guided_regex=r"[A-Z]{2}\d{6}")
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "AB123456" and body["structured_output"]["mode"] == "repaired"
    sent = upstream.requests[0]
    assert "guided_regex" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Answer with text that matches this regular "
                                   "expression in full, and nothing else: [A-Z]{2}\\d{6}"}


def test_a_grammar_with_nowhere_to_go_is_a_400_naming_the_backend(scripted: tuple[ScriptedUpstream, str],
                                                                  tmp_path: Path) -> None:
    upstream, url = scripted
    with gateway(url, tmp_path, structured_output="none") as gw:
        response = ask(gw, structured_outputs={"grammar": "root ::= \"yes\" | \"no\""})
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "unsupported_parameter"
    assert error["param"] == "structured_outputs.grammar" and "backend `up`" in error["message"]
    assert upstream.requests == []
