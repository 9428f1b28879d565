"""An eval suite: cases (chat messages or one input, the expected answer, tags, scorers, generation params) read
from YAML or JSONL, checked whole when loaded, with a hash that pins a baseline to the same cases.

YAML: `name`, `description`, `defaults: {scorers: [...]}`, `cases: [...]`. JSONL: one case per line, the suite
named by the file's stem. Every problem is a `SuiteError` naming the file, the line and the field path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sluice.evals.errors import SuiteError
from sluice.evals.score import AnyScorer
from sluice.evals.scorers import build_scorer

YAML_SUFFIXES = (".yaml", ".yml")


class Message(BaseModel):
    """An OpenAI chat message, as a suite writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class Case(BaseModel):
    """One case: `input` (a string) is read as a single user message, so `messages` is always set after loading."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1)
    messages: list[Message] | None = Field(None, min_length=1)
    input: str | None = None
    vars: dict[str, Any] = {}  # for prompt templates (not built yet)
    expected: Any = None
    tags: list[str] = []
    scorers: list[Any] = []  # names or mappings; checked by build_scorer when the suite loads
    params: dict[str, Any] = {}  # generation params: temperature, max_tokens, ...

    @model_validator(mode="after")
    def _one_prompt(self) -> Case:
        if (self.messages is None) == (self.input is None):
            raise ValueError("give either `messages` (chat messages) or `input` (a string)"
                             + (", not both" if self.messages is not None else ""))
        if self.input is not None:
            self.messages, self.input = [Message(role="user", content=self.input)], None
        return self


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scorers: list[Any] = []


class _SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    defaults: Defaults = Defaults()
    cases: list[dict[str, Any]] = Field(min_length=1)  # each validated as a Case on its own, for its line


@dataclass(slots=True, frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    cases: tuple[Case, ...]
    scorers: Mapping[str, tuple[AnyScorer, ...]]  # by case id: the case's own, else the suite's defaults

    @property
    def hash(self) -> str:
        """sha256 of the cases as canonical JSON (sorted keys, scorers with their options filled in): the same
        for the same cases however they are written, different when any case changes."""
        canonical = [case.model_dump(mode="json", exclude_none=True, exclude={"scorers"})
                     | {"scorers": [scorer.spec() for scorer in self.scorers[case.id or ""]]}
                     for case in self.cases]
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def load_suite(path: str | Path) -> Suite:
    """The suite in a YAML or JSONL file; a `SuiteError` naming the file, line and field for anything wrong."""
    path = Path(path)
    file = str(path)
    if path.suffix not in (*YAML_SUFFIXES, ".jsonl"):
        raise SuiteError("", "a suite is a .yaml, .yml or .jsonl file", file=file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SuiteError("", f"cannot read: {error}", file=file) from None
    if path.suffix == ".jsonl":
        return _jsonl_suite(path, text)
    return _yaml_suite(path, text)


def _jsonl_suite(path: Path, text: str) -> Suite:
    file = str(path)
    raws: list[tuple[dict[str, Any], _Lines]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise SuiteError("", f"not JSON ({error})", file=file, line=number) from None
        if not isinstance(item, dict):
            raise SuiteError(f"cases.{len(raws)}", "each line is one case, a JSON object", file=file, line=number)
        raws.append((item, _Lines(number)))
    if not raws:
        raise SuiteError("", "no cases: a JSONL suite has one case per line", file=file)
    return _suite(path, path.stem, "", [], raws)


def _yaml_suite(path: Path, text: str) -> Suite:
    file = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise SuiteError("", f"not YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    lines = _Lines(1, root)
    if not isinstance(data, dict):
        raise SuiteError("", "a YAML suite is a mapping: name, description, defaults, cases", file=file, line=1)
    try:
        header = _SuiteFile.model_validate(data)
    except ValidationError as error:
        raise _placed(error, file, lines) from None
    cases_node = lines.child("cases")
    raws = [(raw, cases_node.child(index)) for index, raw in enumerate(header.cases)]
    defaults = [(spec, lines.child("defaults").child("scorers").child(index))
                for index, spec in enumerate(header.defaults.scorers)]
    return _suite(path, header.name, header.description, defaults, raws)


def _suite(path: Path, name: str, description: str, defaults: list[tuple[Any, _Lines]],
           raws: list[tuple[dict[str, Any], _Lines]]) -> Suite:
    file = str(path)
    default_scorers = tuple(_scorer(spec, f"defaults.scorers.{index}", file, lines)
                            for index, (spec, lines) in enumerate(defaults))
    cases: list[Case] = []
    scorers: dict[str, tuple[AnyScorer, ...]] = {}
    first_line: dict[str, int | None] = {}
    for index, (raw, lines) in enumerate(raws):
        prefix = f"cases.{index}"
        try:
            case = Case.model_validate(raw)
        except ValidationError as error:
            raise _placed(error, file, lines, prefix) from None
        case.id = case.id or f"case-{index + 1}"
        if case.id in first_line:
            raise SuiteError(f"{prefix}.id", f"duplicate id {case.id!r} (first at line {first_line[case.id]})",
                             file=file, line=lines.child("id").line)
        first_line[case.id] = lines.line
        own = tuple(_scorer(spec, f"{prefix}.scorers.{number}", file, lines.child("scorers").child(number))
                    for number, spec in enumerate(case.scorers))
        chosen = own or default_scorers
        if not chosen:
            raise SuiteError(f"{prefix}.scorers", "no scorers: give the case `scorers` or the suite "
                             "`defaults: {scorers: [...]}`", file=file, line=lines.line)
        for number, scorer in enumerate(chosen):
            problem = scorer.problem(case)
            if problem:
                if own:
                    raise SuiteError(f"{prefix}.scorers.{number}", problem, file=file,
                                     line=lines.child("scorers").child(number).line)
                raise SuiteError(f"{prefix}.expected", problem, file=file, line=lines.line)
        cases.append(case)
        scorers[case.id] = chosen
    return Suite(name, description, path, tuple(cases), scorers)


def _scorer(spec: Any, path: str, file: str, lines: _Lines) -> AnyScorer:
    try:
        return build_scorer(spec, "")
    except SuiteError as error:
        raise error.at(file=file, line=lines.line, prefix=path) from None


def _placed(error: ValidationError, file: str, lines: _Lines, prefix: str = "") -> SuiteError:
    """The first validation error, at the line of the deepest part of its path the file has."""
    first = error.errors()[0]
    loc = [part for part in first["loc"] if not (isinstance(part, str) and "[" in part)]  # drop union tags
    node = lines
    for part in loc:
        node = node.child(part)
    path = ".".join(str(part) for part in (*([prefix] if prefix else []), *loc))
    return SuiteError(path, first["msg"].removeprefix("Value error, "), file=file, line=node.line)


class _Lines:
    """A place in the file: its line, and (YAML) the node there, to find the lines of the fields below it."""

    __slots__ = ("line", "node")

    def __init__(self, line: int, node: yaml.Node | None = None) -> None:
        self.line = line
        self.node = node

    def child(self, key: str | int) -> _Lines:
        """The place of a field or item below; this place again when the file does not have it (JSONL, or a
        missing field)."""
        node = self.node
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    return _Lines(key_node.start_mark.line + 1, value_node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            item = node.value[key]
            return _Lines(item.start_mark.line + 1, item)
        return self


__all__ = ["Case", "Defaults", "Message", "Suite", "load_suite"]
