"""The CI/CD path through a real gateway: a production version's run recorded as the baseline, a candidate
version put on a deployment's candidate side at 0 %, gated against it (exit 1 on a real regression, the flipped
cases named, the verdict kept with the version), promotion to `production` refused after a failed gate unless
forced with a reason; raw backend targets, compare and report, resume retrying errored cases, and the errors
that exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from sluice.cli import app
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.servers import serve_app

runner = CliRunner()
WIDE = {"COLUMNS": "220"}
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Spain": "Madrid", "Italy": "Rome", "Peru": "Lima",
            "Egypt": "Cairo", "Kenya": "Nairobi", "Chile": "Santiago", "Cuba": "Havana", "Iran": "Tehran",
            "Iraq": "Baghdad", "Mali": "Bamako", "Nepal": "Kathmandu", "Oman": "Muscat", "Laos": "Vientiane",
            "Fiji": "Suva", "Togo": "Lome", "Chad": "NDjamena", "Qatar": "Doha", "Yemen": "Sanaa",
            "Ghana": "Accra", "Haiti": "Port-au-Prince", "India": "New Delhi", "Japan2": "Tokyo", "Korea": "Seoul",
            "Libya": "Tripoli", "Malta": "Valletta", "Niger": "Niamey", "Norway": "Oslo", "Poland": "Warsaw"}
SUITE = "name: capitals\ndefaults:\n  scorers: [exact]\ncases:\n" + "".join(
    f"  - id: {country.lower()}\n    input: Capital of {country}?\n    expected: {city}\n"
    for country, city in CAPITALS.items())
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass
class Answering:
    """An OpenAI-compatible upstream that knows the capitals, except those it gets `wrong`; questions naming a
    country in `broken` get a 500."""

    wrong: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._answer, methods=["POST"]),
                                 Route("/v1/models", self._models, methods=["GET"])])

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "chat-up", "object": "model", "owned_by": "x"}]})

    async def _answer(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        country = body["messages"][-1]["content"].removeprefix("Capital of ").rstrip("?")
        if country in self.broken:
            return JSONResponse({"error": {"message": "upstream down", "type": "server_error"}}, status_code=500)
        text = "I do not know" if country in self.wrong else CAPITALS.get(country, "?")
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}})


@dataclass
class Setup:
    gateway: RunningGateway
    good: Answering
    bad: Answering
    good_url: str
    suite: Path
    tmp: Path


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    good, bad = Answering(), Answering(wrong={"Spain", "Italy", "Peru", "Egypt", "Kenya", "Chile", "Cuba", "Iran",
                                              "Iraq", "Mali"})
    suite = tmp_path / "capitals.yaml"
    suite.write_text(SUITE)
    with serve_app(good.app()) as good_url, serve_app(bad.app()) as bad_url:
        config = upstream_config(good_url, tmp_path / "db.sqlite", backends={
            "good": {"type": "openai", "base_url": good_url + "/v1", "read_timeout_s": 5.0},
            "bad": {"type": "openai", "base_url": bad_url + "/v1", "read_timeout_s": 5.0}},
            models={"chat": {"targets": [{"backend": "good", "model": "chat-up"}]}})
        with run_gateway(config) as gateway:
            yield Setup(gateway, good, bad, good_url, suite, tmp_path)


def sluice(s: Setup, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", s.gateway.url], env=WIDE)
    return result.exit_code, " ".join(result.output.split())


def test_a_regressed_candidate_fails_its_gate_and_cannot_become_production_unforced(setup: Setup) -> None:
    s = setup
    assert sluice(s, "models", "register", "support", "--base", BASE, "--target", "good:chat-up")[0] == 0
    assert sluice(s, "models", "alias", "support", "production", "1")[0] == 0
    code, out = sluice(s, "eval", "run", str(s.suite), "--target", "support@production", "--record",
                       "--out", str(s.tmp / "baseline.jsonl"))
    assert code == 0, out
    assert "30/30" in out and "recorded as eval run 1 of support@1" in out
    assert sluice(s, "models", "register", "support", "--base", BASE, "--target", "bad:chat-up",
                  "--param", "temperature=0.1")[0] == 0
    assert sluice(s, "deploy", "set-candidate", "chat", "--version", "support@2")[0] == 0
    s.bad.requests.clear()
    s.good.requests.clear()

    code, out = sluice(s, "eval", "gate", str(s.suite), "--target", "support@2", "--baseline", "production",
                       "--max-regression", "accuracy=0.02", "--min", "accuracy=0.5",
                       "--out", str(s.tmp / "gate.jsonl"), "--html", str(s.tmp / "gate.html"))
    assert code == 1, out
    assert "gate FAILED" in out and "accuracy drops by at most 0.02" in out
    assert "10 flipped cases, regressions first" in out and "spain" in out
    assert len(s.bad.requests) == 30 and not s.good.requests  # pinned to the candidate side
    assert {request["temperature"] for request in s.bad.requests} == {0.1}  # the version's params
    assert (s.tmp / "gate.html").read_text().count("spain") >= 1

    runs = httpx.get(s.gateway.url + "/admin/models/support/evals").json()["data"]
    assert [(run["version"], run["gate_status"]) for run in runs] == [(2, "fail"), (1, None)]
    code, out = sluice(s, "models", "show", "support@2")
    assert code == 0 and "fail" in out and "capitals" in out

    code, out = sluice(s, "models", "alias", "support", "production", "2")
    assert code == 1 and "support@2 failed its last quality gate" in out and "--force --reason" in out
    code, out = sluice(s, "models", "alias", "support", "production", "2", "--force")
    assert code == 2 and "--force needs a --reason" in out
    code, out = sluice(s, "models", "alias", "support", "production", "2", "--force", "--reason", "hotfix, ok'd")
    assert code == 0, out
    events = httpx.get(s.gateway.url + "/admin/models/support/aliases").json()["data"]
    assert events[-1]["reason"].startswith("override of a failed gate, eval run 2 (suite capitals")
    assert events[-1]["reason"].endswith(": hotfix, ok'd")
    assert sluice(s, "models", "alias", "support", "staging", "2")[0] == 0  # only production is guarded


def test_a_candidate_as_good_as_production_passes(setup: Setup) -> None:
    s = setup
    assert sluice(s, "models", "register", "support", "--base", BASE, "--target", "good:chat-up")[0] == 0
    assert sluice(s, "eval", "run", str(s.suite), "-t", "support@1", "--record",
                  "--out", str(s.tmp / "baseline.jsonl"))[0] == 0
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "support@1", "--baseline", "support@1",
                       "--max-regression", "accuracy=0.02", "--min", "accuracy=0.8", "--max", "error_rate=0.2",
                       "--out", str(s.tmp / "gate.jsonl"), "--json")
    assert code == 0, out
    report = orjson.loads(out[out.index("{"):])
    assert report["status"] == "pass" and report["flips"] == [] and report["shared_cases"] == 30
    assert sluice(s, "models", "alias", "support", "production", "1")[0] == 0


def test_a_small_shortfall_is_inconclusive_and_strict_fails_it(setup: Setup) -> None:
    s = setup
    s.good.wrong = {"France"}  # 29/30 against a minimum of 0.97: not shown to be below it
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--min", "accuracy=0.97",
                       "--out", str(s.tmp / "a.jsonl"))
    assert code == 0 and "inconclusive" in out and "more cases or --repeats" in out
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--min", "accuracy=0.97", "--strict",
                       "--out", str(s.tmp / "b.jsonl"))
    assert code == 1 and "--strict" in out


def test_a_raw_backend_is_called_directly(setup: Setup) -> None:
    s = setup
    code, out = sluice(s, "eval", "run", str(s.suite), "--target", s.good_url + "/v1", "--model", "chat-up",
                       "--out", str(s.tmp / "raw.jsonl"))
    assert code == 0 and "30/30" in out, out
    assert "x-sluice-cache" not in str(s.good.requests[0])
    assert {request["model"] for request in s.good.requests} == {"chat-up"}


def test_resume_retries_only_the_cases_that_errored(setup: Setup) -> None:
    s = setup
    s.good.broken = {"Spain", "Peru"}
    out_file = s.tmp / "run.jsonl"
    code, out = sluice(s, "eval", "run", str(s.suite), "-m", "chat", "--out", str(out_file))
    assert code == 0 and "errors 2" in out
    s.good.broken = set()
    s.good.requests.clear()
    code, out = sluice(s, "eval", "run", str(s.suite), "-m", "chat", "--out", str(out_file), "--resume")
    assert code == 0 and "errors 0" in out and "30/30" in out, out
    asked = sorted(request["messages"][-1]["content"] for request in s.good.requests)
    assert asked == ["Capital of Peru?", "Capital of Spain?"]


def test_compare_and_report_read_two_runs(setup: Setup) -> None:
    s = setup
    assert sluice(s, "eval", "run", str(s.suite), "-m", "chat", "--out", str(s.tmp / "a.jsonl"))[0] == 0
    s.good.wrong = set(list(CAPITALS)[:12])
    assert sluice(s, "eval", "run", str(s.suite), "-m", "chat", "--out", str(s.tmp / "b.jsonl"))[0] == 0
    result = runner.invoke(app, ["eval", "compare", str(s.tmp / "a.jsonl"), str(s.tmp / "b.jsonl"),
                                 "--html", str(s.tmp / "compare.html")], env=WIDE)
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    assert "30 shared cases" in out and "worse" in out and "12 flipped cases" in out
    assert (s.tmp / "compare.html").stat().st_size > 1000
    result = runner.invoke(app, ["eval", "report", str(s.tmp / "b.jsonl"), "--baseline", str(s.tmp / "a.jsonl"),
                                 "--html", str(s.tmp / "report.html")])
    assert result.exit_code == 0 and (s.tmp / "report.html").is_file()


def test_bad_gate_input_exits_2_saying_what_to_type(setup: Setup) -> None:
    s = setup
    out_file = str(s.tmp / "x.jsonl")
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--out", out_file)
    assert code == 2 and "give at least one of --min, --max, --max-regression" in out
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--min", "acuracy=0.5", "--out", out_file)
    assert code == 2 and "unknown metric 'acuracy'" in out
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--max-regression", "accuracy=0.1",
                       "--out", str(s.tmp / "y.jsonl"))
    assert code == 2 and "--max-regression needs a --baseline" in out
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--baseline", "production",
                       "--max-regression", "accuracy=0.1", "--out", str(s.tmp / "z.jsonl"))
    assert code == 2 and "needs MODEL@REF" in out
    assert sluice(s, "models", "register", "support", "--base", BASE, "--target", "bad:chat-up")[0] == 0
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "support@1", "--min", "accuracy=0.5",
                       "--out", str(s.tmp / "w.jsonl"))
    assert code == 2 and "support@1 is not served by any deployment" in out and "set-candidate" in out
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--baseline", "support@1",
                       "--max-regression", "accuracy=0.1", "--out", str(s.tmp / "v.jsonl"))
    assert code == 2 and "no eval run of support@1 on suite hash" in out
    code, out = sluice(s, "eval", "run", str(s.suite), "-t", s.good_url + "/v1", "--out", str(s.tmp / "u.jsonl"))
    assert code == 2 and "a raw backend needs --model" in out
    other = s.tmp / "other.yaml"
    other.write_text(SUITE.replace("name: capitals", "name: other").replace("Paris", "Lyon"))
    assert sluice(s, "eval", "run", str(other), "-m", "chat", "--out", str(s.tmp / "other.jsonl"))[0] == 0
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--baseline", str(s.tmp / "other.jsonl"),
                       "--max-regression", "accuracy=0.1", "--out", str(s.tmp / "t.jsonl"))
    assert code == 2 and "a baseline must be a run of the same cases and scorers" in out
    s.good.broken = set(CAPITALS)
    code, out = sluice(s, "eval", "gate", str(s.suite), "-t", "chat", "--min", "accuracy=0.5",
                       "--out", str(s.tmp / "s.jsonl"))
    assert code == 2 and "every case errored" in out and "--resume" in out
