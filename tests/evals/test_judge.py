"""The LLM-as-judge scorer: its verdict read defensively, its prompt and model pinned in the suite's hash, and
judged runs through a real gateway whose judge model is a scripted upstream — valid verdicts scored, garbage and
out-of-scale scores counted as judge errors, never as scores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from sluice.evals import (
    JUDGE_PROMPT_HASH,
    CaseResult,
    JudgeError,
    Suite,
    SuiteError,
    load_suite,
    parse_verdict,
    run_suite,
    summarize,
)
from sluice.evals import judge as judge_module
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app

RUBRIC = "Full marks for naming the capital correctly; nothing else matters."
SUITE = f"""\
name: judged
defaults:
  scorers: [{{type: judge, model: judge, rubric: "{RUBRIC}"}}]
cases:
  - id: france
    input: Capital of France?
    expected: Paris
  - id: japan
    input: Capital of Japan?
"""


def write_suite(tmp_path: Path, text: str = SUITE, name: str = "judged.yaml") -> Suite:
    path = tmp_path / name
    path.write_text(text)
    return load_suite(path)


@contextmanager
def judged_gateway(tmp_path: Path, answers: list[str], verdicts: list[str],
                   **overrides: Any) -> Iterator[tuple[str, ScriptedUpstream, ScriptedUpstream]]:
    """A gateway serving `m` (answers) and `judge` (verdicts), each from its own scripted upstream."""
    model, judge = ScriptedUpstream(answers), ScriptedUpstream(verdicts)
    with ExitStack() as stack:
        model_url = stack.enter_context(serve_app(model.app()))
        judge_url = stack.enter_context(serve_app(judge.app()))
        config = upstream_config(model_url, tmp_path / "log.db", **overrides)
        config["backends"]["judge-up"] = {"type": "openai", "base_url": judge_url + "/v1"}
        config["models"]["judge"] = {"targets": [{"backend": "judge-up", "model": "up-model"}]}
        gateway = stack.enter_context(run_gateway(config))
        yield gateway.url, model, judge


def run(suite: Suite, url: str, **options: Any) -> list[CaseResult]:
    return asyncio.run(run_suite(suite, base_url=url, model="m", concurrency=1, **options))


@pytest.mark.parametrize(("text", "score", "reason"), [
    ('{"score": 4, "reason": "right"}', 4.0, "right"),
    ('```json\n{"score": 2.5, "reason": "half"}\n```', 2.5, "half"),
    ('Here is my verdict: {"score": 5, "reason": "exact",}', 5.0, "exact"),
    ('{"score": "3"}', 3.0, ""),
])
def test_a_verdict_is_read_from_json_even_when_wrapped(text: str, score: float, reason: str) -> None:
    assert parse_verdict(text, 1, 5) == (score, reason)


@pytest.mark.parametrize(("text", "problem"), [
    ("The answer looks fine to me.", "not a JSON verdict"),
    ("", "not a JSON verdict"),
    ('{"reason": "no score"}', "no numeric `score`"),
    ('{"score": true, "reason": "a bool is not a score"}', "no numeric `score`"),
    ('{"score": 7, "reason": "too high"}', "score 7 is outside the scale 1..5"),
    ('{"score": 0, "reason": "too low"}', "score 0 is outside the scale 1..5"),
])
def test_anything_but_a_verdict_on_the_scale_is_a_judge_error(text: str, problem: str) -> None:
    with pytest.raises(JudgeError, match=problem):
        parse_verdict(text, 1, 5)


def test_the_judge_model_and_prompt_hash_are_in_the_spec_and_the_suite_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(tmp_path)
    before = suite.hash
    spec = suite.scorers["france"][0].spec()
    assert spec == {"type": "judge", "model": "judge", "rubric": RUBRIC, "threshold": 0.5, "scale": [1.0, 5.0],
                    "prompt_hash": JUDGE_PROMPT_HASH}
    other_judge = write_suite(tmp_path, SUITE.replace("model: judge", "model: judge-2"), "other.yaml")
    assert other_judge.hash != suite.hash
    monkeypatch.setattr(judge_module, "JUDGE_USER_PROMPT", judge_module.JUDGE_USER_PROMPT + "\nBe strict.")
    assert suite.scorers["france"][0].spec()["prompt_hash"] != JUDGE_PROMPT_HASH
    assert suite.hash != before  # the same cases, graded by another prompt: another suite


@pytest.mark.parametrize(("scorer", "message"), [
    ("{type: judge, model: j}", "cases.0.scorers.0.rubric: Field required"),
    ("{type: judge, rubric: r}", "cases.0.scorers.0.model: Field required"),
    ("{type: judge, model: j, rubric: '  '}", "cases.0.scorers.0.rubric: the rubric is blank"),
    ("{type: judge, model: j, rubric: r, scale: [5, 1]}", "cases.0.scorers.0: scale is [worst, best]"),
    ("{type: judge, model: j, rubric: r, threshold: 2}", "cases.0.scorers.0.threshold: Input should be less"),
    ("{type: judge, model: j, rubric: r, prompt_hash: x}", "cases.0.scorers.0.prompt_hash: Extra inputs"),
])
def test_a_bad_judge_spec_is_a_suite_error(tmp_path: Path, scorer: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("]", r"\]")):
        write_suite(tmp_path, f"name: s\ncases:\n  - input: a\n    scorers: [{scorer}]\n")


def test_the_judge_is_asked_for_a_json_verdict_at_temperature_0_and_its_score_is_normalised(
        tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    verdicts = ['{"score": 5, "reason": "correct"}', '{"score": 2, "reason": "wrong city"}']
    with judged_gateway(tmp_path, ["Paris", "Kyoto"], verdicts) as (url, _, judge):
        results = run(suite, url)
    france, japan = results
    assert (france.scores[0].value, france.scores[0].passed, france.scores[0].reason) == (1.0, True, "5/5: correct")
    assert (japan.scores[0].value, japan.scores[0].passed) == (0.25, False) and japan.scores[0].error is None
    asked = judge.requests[0]
    assert asked["temperature"] == 0 and asked["model"] == "up-model" and not asked.get("stream")
    assert asked["response_format"]["type"] == "json_schema"
    assert asked["response_format"]["json_schema"]["schema"]["properties"]["score"] == {
        "type": "number", "minimum": 1.0, "maximum": 5.0}
    system, user = asked["messages"]
    assert system["role"] == "system" and "from 1 (worst) to 5 (best)" in system["content"]
    assert "user: Capital of France?" in user["content"] and "<answer>\nParis\n</answer>" in user["content"]
    assert "<reference_answer>\nParis\n</reference_answer>" in user["content"] and RUBRIC in user["content"]
    assert "(none given)" in judge.requests[1]["messages"][1]["content"]  # japan has no expected answer


def test_a_judge_answering_garbage_is_a_scorer_error_counted_apart_from_the_scores(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    # the gateway enforces response_format: it re-asks the judge, then gives up with a 502
    with judged_gateway(tmp_path, ["Paris", "Tokyo"], ["I think it is fine."]) as (url, _, judge):
        results = run(suite, url)
    assert len(judge.requests) == 6  # three attempts a case
    for result in results:
        score = result.scores[0]
        assert score.error is not None and score.error.startswith("HTTP 502:")
        assert (score.value, score.passed) == (0.0, False) and score.reason.startswith("judge error: HTTP 502")
        assert result.passed is False and result.error is None and result.answer is not None
    summary = summarize(results)
    assert summary.scorer_errors == 2 and summary.errors == 0
    assert "judge" not in summary.by_scorer  # no score was given
    assert (summary.overall.passed, summary.overall.total) == (0, 2)


def test_unenforced_garbage_and_out_of_scale_scores_reach_the_judge_scorer_and_are_errors(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    verdicts = ["no verdict here", '{"score": 9, "reason": "off the scale"}']
    with judged_gateway(tmp_path, ["Paris", "Tokyo"], verdicts, structured={"enforce": False}) as (url, _, _):
        results = run(suite, url)
    assert [result.scores[0].error for result in results] == [
        "not a JSON verdict: 'no verdict here'", "score 9 is outside the scale 1..5"]
    assert summarize(results).scorer_errors == 2


def test_the_gateway_reasks_a_judge_whose_score_is_off_the_scale(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SUITE.replace("  - id: japan\n    input: Capital of Japan?\n", ""))
    verdicts = ['{"score": 9, "reason": "off the scale"}', '{"score": 4, "reason": "good"}']
    with judged_gateway(tmp_path, ["Paris"], verdicts) as (url, _, judge):
        [result] = run(suite, url)
    assert len(judge.requests) == 2 and "$.score" in judge.requests[1]["messages"][-1]["content"]
    assert (result.scores[0].value, result.scores[0].passed, result.scores[0].error) == (0.75, True, None)
    summary = summarize([result])
    assert summary.scorer_errors == 0 and summary.by_scorer["judge"].passed == 1
