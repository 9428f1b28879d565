"""Suites load from YAML and JSONL, name the file, line and field of anything wrong, and hash their cases."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sluice.evals import Message, SuiteError, load_suite

GOOD_YAML = """\
name: capitals
description: capital cities, answered in one word
defaults:
  scorers: [exact]
cases:
  - id: france
    input: What is the capital of France?
    expected: Paris
    tags: [europe]
  - messages:
      - {role: system, content: Answer in one word.}
      - {role: user, content: "What is the capital of Japan?"}
    expected: Tokyo
    params: {temperature: 0, max_tokens: 8}
    scorers:
      - {type: contains, value: Tokyo, ignore_case: true}
      - refusal
  - input: Name a Nordic capital.
    vars: {region: nordic}
    expected: [Oslo, Stockholm, Helsinki, Copenhagen, Reykjavik]
    scorers: [{type: contains, mode: any}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    return str(caught.value)


def test_a_yaml_suite_loads_with_its_cases_scorers_and_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "capitals.yaml", GOOD_YAML))
    assert (suite.name, suite.description) == ("capitals", "capital cities, answered in one word")
    assert [case.id for case in suite.cases] == ["france", "case-2", "case-3"]
    france, japan, nordic = suite.cases
    assert france.messages == [Message(role="user", content="What is the capital of France?")]
    assert france.input is None and france.tags == ["europe"]
    assert japan.params == {"temperature": 0, "max_tokens": 8} and nordic.vars == {"region": "nordic"}
    assert [scorer.type for scorer in suite.scorers["france"]] == ["exact"]  # the default
    assert [scorer.type for scorer in suite.scorers["case-2"]] == ["contains", "refusal"]


def test_a_jsonl_suite_is_named_by_its_file_and_has_a_case_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "math.jsonl", """\
        {"id": "add", "input": "2+2?", "expected": 4, "scorers": ["numeric"]}

        {"messages": [{"role": "user", "content": "Give JSON"}], "expected": {"a": 1}, "scorers": ["json_equal"]}
        """)
    suite = load_suite(path)
    assert suite.name == "math"
    assert [case.id for case in suite.cases] == ["add", "case-2"]
    assert suite.cases[1].expected == {"a": 1}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.jsonl", '{"input": "a", "scorers": ["exact"], "expected": "a"}\n{"input": "b",\n',
     "bad.jsonl:2: not JSON"),
    ("bad.jsonl", '{"expected": "a", "scorers": ["exact"]}\n',
     "bad.jsonl:1: cases.0: give either `messages` (chat messages) or `input` (a string)"),
    ("bad.jsonl", '{"input": "a", "expected": "a", "scorers": ["exact"], "expcted": "b"}\n',
     "bad.jsonl:1: cases.0.expcted: Extra inputs are not permitted"),
    ("bad.jsonl", '{"input": "a", "expected": "a", "scorers": ["fuzzy"]}\n',
     "bad.jsonl:1: cases.0.scorers.0.type: unknown scorer 'fuzzy'; known: exact, contains, regex"),
    ("bad.jsonl", '{"input": "a", "scorers": [{"type": "regex", "pattern": "(a"}]}\n',
     "bad.jsonl:1: cases.0.scorers.0.pattern: not a valid regular expression"),
    ("bad.jsonl", '{"input": "a", "scorers": [{"type": "regex", "pattern": "(a+)+$"}]}\n',
     "bad.jsonl:1: cases.0.scorers.0.pattern: a variable repeat inside another"),
    ("bad.jsonl", '{"input": "a", "scorers": [{"type": "exact", "ignorecase": true}]}\n',
     "bad.jsonl:1: cases.0.scorers.0.ignorecase: Extra inputs are not permitted"),
    ("bad.jsonl", '{"input": "a", "scorers": ["exact"]}\n',
     "bad.jsonl:1: cases.0.scorers.0: exact needs `value` or the case's `expected`"),
    ("bad.jsonl", '{"input": "a", "expected": "a"}\n', "bad.jsonl:1: cases.0.scorers: no scorers"),
    ("bad.jsonl", '[1, 2]\n', "bad.jsonl:1: cases.0: each line is one case, a JSON object"),
    ("bad.jsonl", '\n\n', "bad.jsonl: no cases"),
    ("bad.txt", 'x', "bad.txt: a suite is a .yaml, .yml or .jsonl file"),
])
def test_a_malformed_jsonl_suite_names_file_line_and_field(tmp_path: Path, name: str, text: str,
                                                           message: str) -> None:
    assert error_of(write(tmp_path, name, text)).startswith(str(tmp_path / message))


def test_a_yaml_error_points_at_the_line_of_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", """\
        name: s
        defaults: {scorers: [exact]}
        cases:
          - input: a
            expected: a
          - messages:
              - role: user
                content: hi
              - rol: user
            expected: b
        """)
    assert error_of(path) == f"{path}:9: cases.1.messages.1.role: Field required"


@pytest.mark.parametrize(("text", "message"), [
    ("name: s\ncases:\n  - input: a\n    expected: a\n    scorers: [{type: numeric, abs_tol: -1}]\n",
     ":5: cases.0.scorers.0.abs_tol: Input should be greater than or equal to 0"),
    ("name: s\ncases:\n  - input: a\n    expected: a\n    scorers:\n      - exact\n      - {type: regex}\n",
     ":7: cases.0.scorers.1.pattern: Field required"),
    ("name: s\ndefaults: {scorers: [{type: fuzzy}]}\ncases:\n  - input: a\n",
     ":2: defaults.scorers.0.type: unknown scorer 'fuzzy'"),
    ("name: s\nowner: me\ncases:\n  - input: a\n", ":2: owner: Extra inputs are not permitted"),
    ("name: s\ncases: []\n", ":2: cases: List should have at least 1 item"),
    ("name: s\ncases:\n  - input: a\n   expected: b\n", ":4: not YAML"),
    ("- just a list\n", ":1: a YAML suite is a mapping"),
    ("name: s\ncases:\n  - input: a\n    scorers: [{type: json_schema}]\n",
     ":4: cases.0.scorers.0: json_schema needs `schema` or an object `expected`"),
    ("name: s\ncases:\n  - input: a\n    scorers: [{type: json_schema, schema: {type: 12}}]\n",
     ":4: cases.0.scorers.0.schema: not a valid JSON Schema"),
])
def test_a_malformed_yaml_suite_names_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "s.yaml", text)
    assert error_of(path).startswith(f"{path}{message}")


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.jsonl", """\
        {"id": "q1", "input": "a", "expected": "a", "scorers": ["exact"]}
        {"id": "q2", "input": "b", "expected": "b", "scorers": ["exact"]}
        {"id": "q1", "input": "c", "expected": "c", "scorers": ["exact"]}
        """)
    assert error_of(path) == f"{path}:3: cases.2.id: duplicate id 'q1' (first at line 1)"
    yaml_path = write(tmp_path, "dup.yaml", "name: d\ndefaults: {scorers: [exact]}\ncases:\n"
                      "  - {id: q1, input: a, expected: a}\n  - input: b\n    expected: b\n    id: q1\n")
    assert error_of(yaml_path) == f"{yaml_path}:7: cases.1.id: duplicate id 'q1' (first at line 4)"


def test_the_hash_is_stable_across_key_order_and_form_and_changes_with_content(tmp_path: Path) -> None:
    one = load_suite(write(tmp_path, "one.jsonl",
                           '{"id": "a", "input": "hi", "expected": "x", "scorers": ["exact"]}\n'))
    reordered = load_suite(write(tmp_path, "two.jsonl",
                                 '{"scorers": [{"type": "exact", "strip": true}], "expected": "x", "id": "a",'
                                 ' "messages": [{"content": "hi", "role": "user"}]}\n'))
    as_yaml = load_suite(write(tmp_path, "three.yaml", "name: other\ndescription: words do not count\n"
                               "defaults: {scorers: [exact]}\ncases:\n  - {id: a, input: hi, expected: x}\n"))
    changed = load_suite(write(tmp_path, "four.jsonl",
                               '{"id": "a", "input": "hi", "expected": "y", "scorers": ["exact"]}\n'))
    other_scorer = load_suite(write(tmp_path, "five.jsonl",
                                    '{"id": "a", "input": "hi", "expected": "x", "scorers": ["contains"]}\n'))
    assert one.hash == reordered.hash == as_yaml.hash
    assert len({one.hash, changed.hash, other_scorer.hash}) == 3
    assert len(one.hash) == 64
