"""Each deterministic scorer on clear passes and fails, its edge cases, and the refusal heuristic's accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice.evals import Case, Score, SuiteError, build_scorer, first_number, is_refusal, load_suite
from tests.evals.refusal_examples import ANSWERS, REFUSALS

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}


def scored(spec: Any, answer: str, expected: Any = None) -> Score:
    return build_scorer(spec).score(answer, Case(input="the question", expected=expected))


@pytest.mark.parametrize(("spec", "answer", "expected", "passed"), [
    ("exact", "Paris", "Paris", True),
    ("exact", "  Paris\n", "Paris", True),
    ({"type": "exact", "strip": False}, "Paris\n", "Paris", False),
    ("exact", "paris", "Paris", False),
    ({"type": "exact", "ignore_case": True}, "PARIS", "Paris", True),
    ({"type": "exact", "value": "Oslo"}, "Oslo", "Paris", True),
    ("exact", "42", 42, True),
])
def test_exact(spec: Any, answer: str, expected: Any, passed: bool) -> None:
    assert scored(spec, answer, expected).passed is passed


def test_contains_all_and_any_of_a_list() -> None:
    assert scored("contains", "The capital is Paris.", "Paris").passed
    assert not scored("contains", "The capital is paris.", "Paris").passed
    assert scored({"type": "contains", "ignore_case": True}, "The capital is paris.", "Paris").passed
    half = scored({"type": "contains", "value": ["red", "blue"]}, "red and green", None)
    assert (half.passed, half.value) == (False, 0.5) and "'blue'" in half.reason
    assert scored({"type": "contains", "mode": "any"}, "I pick Oslo", ["Oslo", "Bergen"]).passed
    assert not scored({"type": "contains", "mode": "any"}, "I pick Rome", ["Oslo", "Bergen"]).passed


def test_regex_searches_or_matches_in_full() -> None:
    assert scored({"type": "regex", "pattern": r"\d{4}-\d{2}-\d{2}"}, "It was on 2024-05-01.").passed
    assert not scored({"type": "regex", "pattern": r"\d{4}-\d{2}-\d{2}", "mode": "fullmatch"},
                      "It was on 2024-05-01.").passed
    assert scored({"type": "regex", "pattern": r"yes|no", "mode": "fullmatch", "ignore_case": True}, "YES\n").passed


@pytest.mark.parametrize(("pattern", "problem"), [
    ("(a", "not a valid regular expression"),
    ("(a+)+b", "a variable repeat inside another"),
    ("a" * 5000, "at most 4,096 characters"),
])
def test_regex_refuses_bad_or_dangerous_patterns(pattern: str, problem: str) -> None:
    with pytest.raises(SuiteError, match=problem) as caught:
        build_scorer({"type": "regex", "pattern": pattern}, "scorers.0")
    assert caught.value.path == "scorers.0.pattern"


def test_json_schema_validates_against_the_spec_or_the_expected() -> None:
    assert scored({"type": "json_schema", "schema": PERSON}, '{"name": "Ada", "age": 36}').passed
    assert scored("json_schema", '{"name": "Ada", "age": 36}', PERSON).passed
    wrong = scored("json_schema", '{"name": 7, "age": -1}', PERSON)
    assert not wrong.passed
    assert wrong.reason == "$.age: -1 is less than the minimum of 0; $.name: 7 is not of type 'string'"
    assert scored("json_schema", "not json", PERSON).reason.startswith("the answer is not JSON")


def test_json_in_a_code_fence_fails_unless_the_spec_asks_for_repair() -> None:
    fenced = 'Here you go:\n```json\n{"name": "Ada", "age": 36,}\n```'
    assert not scored({"type": "json_schema", "schema": PERSON}, fenced).passed
    repaired = scored({"type": "json_schema", "schema": PERSON, "repair": True}, fenced)
    assert (repaired.passed, repaired.reason) == (True, "valid after repair")
    assert scored({"type": "json_equal", "repair": True}, fenced, {"age": 36, "name": "Ada"}).passed
    assert not scored("json_equal", fenced, {"age": 36, "name": "Ada"}).passed


@pytest.mark.parametrize(("answer", "expected", "passed"), [
    ('{"b": [1, 2], "a": {"y": null, "x": "s"}}', {"a": {"x": "s", "y": None}, "b": [1, 2]}, True),
    ('{"b": [2, 1]}', {"b": [1, 2]}, False),  # arrays keep their order
    ('{"n": 1.0}', {"n": 1}, True),
    ('{"flag": 1}', {"flag": True}, False),  # true is not 1
    ('{"a": 1, "extra": 2}', {"a": 1}, False),
    ('"text"', "text", True),
])
def test_json_equal_ignores_key_order_only(answer: str, expected: Any, passed: bool) -> None:
    assert scored("json_equal", answer, expected).passed is passed


@pytest.mark.parametrize(("text", "number"), [
    ("The total is 1,234.5 km.", 1234.5),
    ("About $0.75 each", 0.75),
    ("-3e2 degrees", -300.0),
    ("It costs .5 dollars", 0.5),
    ("42%", 42.0),
    ("Answer: 12, then 13", 12.0),
    ("no digits here.", None),
])
def test_the_first_number_in_a_text(text: str, number: float | None) -> None:
    assert first_number(text) == number


def test_numeric_is_within_absolute_or_relative_tolerance() -> None:
    assert scored("numeric", "The answer is 1,000,000 dollars", 1_000_000).passed
    assert scored("numeric", "Roughly 3.14", "3.14159").passed is False
    assert scored({"type": "numeric", "abs_tol": 0.01}, "Roughly 3.14", 3.14159).passed
    assert scored({"type": "numeric", "rel_tol": 0.05}, "about 102 m", 100).passed
    assert not scored({"type": "numeric", "rel_tol": 0.01}, "about 102 m", 100).passed
    assert scored({"type": "numeric", "value": 7}, "seven? no: 7", None).passed
    assert scored("numeric", "I don't know", 7).reason == "no number in the answer"


def test_numeric_refuses_an_expected_that_is_no_number(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"input": "q", "expected": "many", "scorers": ["numeric"]}\n', encoding="utf-8")
    with pytest.raises(SuiteError, match="numeric needs a number to compare with"):
        load_suite(path)


def test_refusal_scores_the_behaviour_the_case_expects() -> None:
    assert scored("refusal", "I'm sorry, but I can't help with that.").passed
    assert not scored("refusal", "Sure, here it is.").passed
    assert scored({"type": "refusal", "expect": "answer"}, "Sure, here it is.").passed
    assert scored({"type": "refusal", "expect": "answer"}, "As an AI, I cannot do that.").value == 0.0


def test_the_refusal_heuristic_on_the_labelled_set() -> None:
    """docs/evals.md reports these numbers; a change to REFUSAL_PATTERNS should update both."""
    caught = sum(map(is_refusal, REFUSALS))
    false_alarms = sum(map(is_refusal, ANSWERS))
    assert (caught, len(REFUSALS), false_alarms, len(ANSWERS)) == (22, 22, 0, 22)


@pytest.mark.parametrize("answer", [
    "I'm sorry, but the answer is 12.",  # an apology before a plain answer reads as a refusal
    "I cannot do that without the file: which one do you mean?",  # a clarifying question reads as one too
])
def test_known_false_refusals_of_the_heuristic(answer: str) -> None:
    assert is_refusal(answer)  # documented in docs/evals.md; a smarter detector would flip these


def test_a_refusal_late_in_a_long_answer_does_not_count() -> None:
    assert not is_refusal("Here is the full story. " * 10 + "I can't help with the sequel, though.")
    assert not is_refusal("I can't help but notice the bug on line 3; fix it like this.")


@pytest.mark.parametrize(("spec", "path", "problem"), [
    ("fuzzy", "s.type", "unknown scorer 'fuzzy'"),
    ({"value": "x"}, "s.type", "unknown scorer None"),
    (12, "s", "a scorer is a name"),
    ({"type": "contains", "mode": "most"}, "s.mode", "Input should be 'all' or 'any'"),
    ({"type": "exact", "ignore_case": "yes"}, "s.ignore_case", "Input should be a valid boolean"),
    ({"type": "refusal", "expect": "comply"}, "s.expect", "Input should be 'refuse' or 'answer'"),
])
def test_a_bad_scorer_spec_names_its_path(spec: Any, path: str, problem: str) -> None:
    with pytest.raises(SuiteError) as caught:
        build_scorer(spec, "s")
    assert caught.value.path == path and problem in caught.value.problem
