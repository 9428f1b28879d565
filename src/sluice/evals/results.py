"""An eval run's results: the per-case records, the JSONL file they are kept in (a header line, then one line per
case, appended as each finishes), and the summary over them (pass rates with 95 % Wilson intervals, latency
percentiles, tokens, cost, per scorer type and per tag)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from sluice.stats import percentile, wilson


class ResultsError(ValueError):
    """A results file that cannot be read: `file:line: problem`."""


@dataclass(slots=True, frozen=True)
class RunHeader:
    suite: str
    suite_hash: str
    model: str
    base_url: str
    started_at: str  # ISO 8601, UTC
    repeats: int


@dataclass(slots=True, frozen=True)
class ScoreResult:
    type: str  # the scorer's type: exact, contains, ...
    value: float
    passed: bool
    reason: str
    # A model-backed scorer that could not score (its judge errored or answered garbage): value 0, passed False,
    # and not a measurement: summaries leave it out of the scorer's rate and count it in `scorer_errors`. The case
    # is not passed, but its own `error` stays None (the call to the model under test worked). Files written
    # before this field read as None.
    error: str | None = None


@dataclass(slots=True, frozen=True)
class CaseResult:
    case_id: str
    repeat: int  # from 0
    answer: str | None  # None when the call errored
    scores: tuple[ScoreResult, ...]
    passed: bool  # every scorer passed (False when errored)
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None  # the gateway's x-sluice-cost-usd
    request_id: str | None = None  # the gateway's x-request-id
    error: str | None = None  # "HTTP 502: ..." or "connection: ..."; the case was not scored (a scorer's own
    # error is on its ScoreResult: the case was answered)
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> CaseResult:
        scores = tuple(ScoreResult(**score) for score in item["scores"])
        return cls(**{**item, "scores": scores, "tags": tuple(item.get("tags", ()))})


class ResultsWriter:
    """The results file, opened for appending: the header first when the file is new; each result a line,
    flushed at once so an interrupted run keeps what it did."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    @classmethod
    def open(cls, path: Path, header: RunHeader | None) -> ResultsWriter:
        """Append to `path`; write `header` first (a new file) unless it is None (resuming)."""
        writer = cls(path.open("ab"))
        if header is not None:
            writer._line(asdict(header))
        return writer

    def write(self, result: CaseResult) -> None:
        self._line(result.to_json())

    def close(self) -> None:
        self._stream.close()

    def _line(self, item: dict[str, Any]) -> None:
        self._stream.write(orjson.dumps(item) + b"\n")
        self._stream.flush()


def load_results(path: str | Path) -> tuple[RunHeader, list[CaseResult]]:
    """The header and results of a results file; a `ResultsError` naming the file and line for anything wrong."""
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror or error}") from None
    if not lines or not lines[0].strip():
        raise ResultsError(f"{path}:1: empty: a results file starts with its run's header")
    header = _parsed(path, 1, lines[0], RunHeader, "the run's header")
    results = [_parsed(path, number, line, CaseResult, "a case result")
               for number, line in enumerate(lines[1:], start=2) if line.strip()]
    return header, results


def _parsed(path: Path, number: int, line: bytes, kind: type[Any], what: str) -> Any:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ResultsError(f"{path}:{number}: not JSON ({error})") from None
    try:
        if not isinstance(item, dict):
            raise TypeError("not an object")
        return kind.from_json(item) if kind is CaseResult else kind(**item)
    except (TypeError, KeyError) as error:
        raise ResultsError(f"{path}:{number}: not {what} ({error})") from None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return percentile(values, q) if values else None


@dataclass(slots=True, frozen=True)
class PassRate:
    passed: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.total if self.total else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.passed, self.total)


@dataclass(slots=True, frozen=True)
class Summary:
    overall: PassRate  # over every result: an errored case counts as not passed
    by_scorer: dict[str, PassRate]  # over the scores given (errored cases have none; scorer errors left out)
    by_tag: dict[str, PassRate]  # like overall, over the results of cases with the tag
    errors: int
    latency_p50_s: float | None  # over answered cases
    latency_p95_s: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None when the gateway reported no cost
    scorer_errors: int = 0  # scores a model-backed scorer could not give (a judge's error or garbage)
    failed: list[CaseResult] = field(default_factory=list)  # not passed, errored included, in file order


def summarize(results: Iterable[CaseResult]) -> Summary:
    results = list(results)
    by_scorer: dict[str, list[int]] = {}
    by_tag: dict[str, list[int]] = {}
    scorer_errors = 0
    for result in results:
        for score in result.scores:
            if score.error is not None:
                scorer_errors += 1
                continue
            counts = by_scorer.setdefault(score.type, [0, 0])
            counts[0] += score.passed
            counts[1] += 1
        for tag in result.tags:
            counts = by_tag.setdefault(tag, [0, 0])
            counts[0] += result.passed
            counts[1] += 1
    answered = [result for result in results if result.error is None]
    latencies = [result.latency_s for result in answered]
    costs = [result.cost_usd for result in results if result.cost_usd is not None]
    return Summary(
        overall=PassRate(sum(result.passed for result in results), len(results)),
        by_scorer={kind: PassRate(*counts) for kind, counts in sorted(by_scorer.items())},
        by_tag={tag: PassRate(*counts) for tag, counts in sorted(by_tag.items())},
        errors=len(results) - len(answered),
        latency_p50_s=_percentile(latencies, 50), latency_p95_s=_percentile(latencies, 95),
        prompt_tokens=sum(result.prompt_tokens or 0 for result in results),
        completion_tokens=sum(result.completion_tokens or 0 for result in results),
        cost_usd=sum(costs) if costs else None, scorer_errors=scorer_errors,
        failed=[result for result in results if not result.passed])


__all__ = ["CaseResult", "PassRate", "ResultsError", "ResultsWriter", "RunHeader", "ScoreResult", "Summary",
           "load_results", "percentile", "summarize", "wilson"]
