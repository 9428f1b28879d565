"""The HTML report of eval runs: its tables hold the summary's numbers, a before/after report lists the cases that
flipped in the right direction (regressions first), every answer is escaped, the plots are inlined PNGs, and the
file reaches for nothing outside itself — read back with the standard library's HTML parser."""

from __future__ import annotations

import base64
import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sluice.evals.gate import flipped_cases
from sluice.evals.report import MAX_FAILED_ROWS, case_outcomes, render_html_report, write_html_report
from sluice.evals.results import CaseResult, ResultsWriter, RunHeader, ScoreResult, load_results
from sluice.stats import wilson

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEADER = RunHeader(suite="capitals", suite_hash="9f2c" + "0" * 60, model="model-a", base_url="http://127.0.0.1:4000",
                   started_at="2025-06-01T09:00:00+00:00", repeats=1)
CANDIDATE_HEADER = dataclasses.replace(HEADER, model="model-b", started_at="2025-06-02T09:00:00+00:00")


class Page(HTMLParser):
    """What a test reads of a report: each table's rows (cell texts, unescaped) and row classes by table id, the
    tags that appear, every src/href attribute, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.row_classes: dict[str, list[str]] = {}
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text = ""  # every text node, unescaped
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        named = dict(attrs)
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]
        if tag == "table":
            self._table = named.get("id") or "?"
            self.tables[self._table], self.row_classes[self._table] = [], []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
            self.row_classes[self._table].append(named.get("class") or "")
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self, table: str) -> list[list[str]]:
        return self.tables[table][1:]  # the first row is the header

    def row(self, table: str, name: str) -> list[str]:
        return next(row for row in self.tables[table] if row and row[0] == name)

    def images(self) -> list[bytes]:
        prefix = "data:image/png;base64,"
        return [base64.b64decode(link[len(prefix):]) for link in self.links if link.startswith(prefix)]


def score(kind: str, passed: bool, value: float | None = None, reason: str = "") -> ScoreResult:
    return ScoreResult(type=kind, value=float(passed) if value is None else value, passed=passed,
                       reason=reason or ("ok" if passed else f"{kind} failed"))


def result(case_id: str, *scores: ScoreResult, repeat: int = 0, answer: str | None = "Paris",
           tags: tuple[str, ...] = (), latency_s: float = 0.4, error: str | None = None) -> CaseResult:
    return CaseResult(case_id=case_id, repeat=repeat, answer=None if error else answer, scores=scores,
                      passed=error is None and bool(scores) and all(s.passed for s in scores), latency_s=latency_s,
                      error=error, tags=tags)


def interval(passed: int, total: int) -> str:
    low, high = wilson(passed, total)
    return f"{100 * low:.1f}–{100 * high:.1f} %"


def single_run() -> list[CaseResult]:
    return [result("france", score("exact", True), score("contains", True), tags=("europe",), latency_s=0.3),
            result("japan", score("exact", False, reason="expected 'Tokyo', got 'Kyoto'"), score("contains", True),
                   answer="Kyoto", tags=("asia",), latency_s=0.5),
            result("peru", tags=("americas",), error="HTTP 502: upstream unavailable"),
            result("italy", score("exact", True), tags=("europe",), latency_s=0.7)]


def test_summary_tables_hold_pass_counts_rates_and_intervals_overall_per_scorer_and_per_tag() -> None:
    page = Page(render_html_report([("model-a", HEADER, single_run())]))
    assert page.row("pass-rates", "all results") == ["all results", "2/4", "50.0 %", interval(2, 4)]
    assert page.row("pass-rates", "exact") == ["exact", "2/3", "66.7 %", interval(2, 3)]
    assert page.row("pass-rates", "contains") == ["contains", "2/2", "100.0 %", interval(2, 2)]
    assert page.row("pass-rates", "europe")[1:3] == ["2/2", "100.0 %"]
    assert page.row("pass-rates", "asia")[1:3] == ["0/1", "0.0 %"]
    assert page.row("pass-rates", "americas")[1:3] == ["0/1", "0.0 %"]  # an errored call counts as failed
    assert page.row("metrics", "errored calls") == ["errored calls", "1"]
    assert page.row("metrics", "latency P50 (answered)") == ["latency P50 (answered)", "0.500 s"]
    assert page.row("runs", "suite hash") == ["suite hash", "9f2c00000000"]
    assert page.row("runs", "cases") == ["cases", "4"]
    failed = page.body_rows("failed")
    assert [row[0] for row in failed] == ["japan", "peru"]
    assert failed[0][3] == "exact: expected 'Tokyo', got 'Kyoto'" and failed[0][4] == "Kyoto"
    assert failed[1][3] == "call error: HTTP 502: upstream unavailable" and failed[1][4] == "(no answer)"


def test_before_after_lists_regressions_first_then_fixes_with_the_failing_sides_reason() -> None:
    baseline = [result("steady", score("exact", True)), result("slipped", score("contains", True, 1.0)),
                result("fixed", score("exact", False), answer="Lyon"), result("stuck", score("exact", False)),
                result("broke", score("exact", True)), result("dropped", score("exact", True))]
    candidate = [result("steady", score("exact", True)), result("added", score("exact", False)),
                 result("slipped", score("contains", False, 0.5, "found 1 of 2: missing 'Rome'"), answer="Paris"),
                 result("fixed", score("exact", True)), result("stuck", score("exact", False)),
                 result("broke", score("exact", False, reason="expected 'Paris', got 'Lyon'"), answer="Lyon")]
    page = Page(render_html_report([("before", HEADER, baseline), ("after", CANDIDATE_HEADER, candidate)]))
    flips = page.body_rows("flips")
    assert [(row[0], row[1]) for row in flips] == [("broke", "pass → fail"), ("slipped", "pass → fail"),
                                                   ("fixed", "fail → pass")]  # the larger drop first
    assert page.row_classes["flips"][1:] == ["regression", "regression", "fix"]
    assert flips[0][2:7] == ["1/1 · 1.00", "0/1 · 0.00", "exact: expected 'Paris', got 'Lyon'", "Paris", "Lyon"]
    assert flips[1][4] == "contains: found 1 of 2: missing 'Rome'"
    assert flips[2][4] == "exact: exact failed" and flips[2][5] == "Lyon"  # a fix shows why the baseline failed
    assert page.row("flip-counts", "before: pass")[1:] == ["1", "2"]
    assert page.row("flip-counts", "before: fail")[1:] == ["1", "1"]
    assert "Cases only in before: 1; only in after: 1." in page.text
    assert page.row("pass-rates", "all results") == ["all results", "4/6", "66.7 %", interval(4, 6),
                                                     "2/6", "33.3 %", interval(2, 6), "-33.3 pp"]
    assert [row[0] for row in page.body_rows("failed")] == ["added", "slipped", "stuck", "broke"]  # the candidate's
    assert page.row("runs", "model") == ["model", "model-a", "model-b"]


def test_a_case_with_repeats_passes_when_half_its_repeats_do_as_the_gate_counts_flips() -> None:
    def repeats(case_id: str, *passed: bool) -> list[CaseResult]:
        return [result(case_id, score("exact", ok), repeat=index) for index, ok in enumerate(passed)]

    baseline = [*repeats("held", True, True, True), *repeats("lost", True, True, False),
                *repeats("half", True, False), *repeats("back", False, False)]
    candidate = [*repeats("held", True, False, True), *repeats("lost", False, True, False),
                 *repeats("half", False, False), *repeats("back", False, True)]
    outcomes = case_outcomes(candidate)
    assert (outcomes["held"].passed, outcomes["held"].repeats, outcomes["held"].verdict) == (2, 3, True)
    assert outcomes["held"].mean_score == pytest.approx(2 / 3)
    assert case_outcomes(baseline)["half"].verdict is True  # one of two counts as a pass, as in the gate
    assert outcomes["lost"].shown.repeat == 0  # the repeat shown agrees with the case's verdict (failed)
    page = Page(render_html_report([("before", HEADER, baseline), ("after", CANDIDATE_HEADER, candidate)]))
    flips = page.body_rows("flips")
    assert [(row[0], row[1], row[2], row[3]) for row in flips] == [
        ("half", "pass → fail", "1/2 · 0.50", "0/2 · 0.00"), ("lost", "pass → fail", "2/3 · 0.67", "1/3 · 0.33"),
        ("back", "fail → pass", "0/2 · 0.00", "1/2 · 0.50")]
    assert [row[0] for row in flips] == [flip.case_id for flip in flipped_cases(baseline, candidate)]
    assert page.row("flip-counts", "before: pass")[1:] == ["1", "2"]
    assert page.row("flip-counts", "before: fail")[1:] == ["1", "0"]


def test_untrusted_text_is_escaped_everywhere() -> None:
    hostile = '<script>alert("x")</script><img src="http://evil.example/x.png">'
    results = [result("<b>id</b>", score("regex", False, reason=hostile), answer=hostile, tags=("<i>tag</i>",))]
    html = render_html_report([("run & <label>", HEADER, results)], title="<title>")
    page = Page(html)
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert page.body_rows("failed")[0] == ["<b>id</b>", "0", "<i>tag</i>", f"regex: {hostile}", hostile]
    assert not any("evil" in link for link in page.links)


def test_long_answers_are_cut_with_their_length_given() -> None:
    answer = "x" * 5000
    page = Page(render_html_report([("run", HEADER, [result("long", score("exact", False), answer=answer)])]))
    shown = page.body_rows("failed")[0][4]
    assert shown.startswith("x" * 400) and shown.endswith("… (5,000 characters)") and len(shown) < 450


@pytest.mark.parametrize(("runs", "plots"), [(1, 3), (2, 4)])
def test_plots_are_inlined_pngs_and_nothing_external_is_referenced(runs: int, plots: int) -> None:
    named = [("before", HEADER, single_run()), ("after", CANDIDATE_HEADER, single_run())][-runs:]
    html = render_html_report(named)
    page = Page(html)
    images = page.images()
    assert len(images) == plots and all(png.startswith(PNG_MAGIC) for png in images)
    assert page.tags.count("img") == plots and "svg" not in page.tags
    assert all(link.startswith("data:image/png;base64,") for link in page.links)
    assert not {"link", "script", "iframe", "object"} & set(page.tags)
    for external in ("@import", "url("):
        assert external not in html


def test_a_run_with_no_results_renders_empty_tables_and_no_plots() -> None:
    page = Page(render_html_report([("before", HEADER, []), ("after", CANDIDATE_HEADER, [])]))
    assert page.row("pass-rates", "all results") == ["all results", "0/0", "—", "—", "0/0", "—", "—", "—"]
    assert page.row("metrics", "latency P50 (answered)")[1:] == ["—", "—"]
    assert page.images() == [] and "flips" not in page.tables and "failed" not in page.tables


def test_all_errored_draws_only_the_pass_rate_plot() -> None:
    results = [result(f"case-{n}", error="connection: refused", tags=("t",)) for n in range(3)]
    page = Page(render_html_report([("run", HEADER, results)]))
    assert page.row("pass-rates", "all results")[1:3] == ["0/3", "0.0 %"]
    assert page.row("metrics", "errored calls") == ["errored calls", "3"]
    assert page.row("metrics", "latency P95 (answered)") == ["latency P95 (answered)", "—"]
    assert len(page.images()) == 1 and len(page.body_rows("failed")) == 3


def test_no_tags_and_a_scorer_only_one_run_has() -> None:
    baseline = [result("a", score("exact", True), score("refusal", True)), result("b", score("exact", False))]
    candidate = [result("a", score("exact", True)), result("b", score("exact", True))]
    page = Page(render_html_report([("before", HEADER, baseline), ("after", CANDIDATE_HEADER, candidate)]))
    sections = [row[0] for row, kind in zip(page.tables["pass-rates"], page.row_classes["pass-rates"], strict=True)
                if kind == "section"]
    assert sections == ["overall", "by scorer"]  # no tags: no tag section
    assert page.row("pass-rates", "refusal")[1:] == ["1/1", "100.0 %", interval(1, 1), "0/0", "—", "—", "—"]
    assert len(page.images()) == 4


def test_failing_results_beyond_the_limit_are_counted() -> None:
    results = [result(f"case-{n}", score("exact", False)) for n in range(MAX_FAILED_ROWS + 5)]
    html = render_html_report([("run", HEADER, results)])
    assert len(Page(html).body_rows("failed")) == MAX_FAILED_ROWS
    assert "And 5 more failing results, not listed." in html


def test_runs_of_different_suites_are_flagged() -> None:
    other = dataclasses.replace(CANDIDATE_HEADER, suite_hash="1" * 64)
    html = render_html_report([("before", HEADER, single_run()), ("after", other, single_run())])
    assert "The runs are of different suites" in html


@pytest.mark.skipif("error" not in {field.name for field in dataclasses.fields(ScoreResult)},
                    reason="ScoreResult has no `error` field yet")
def test_a_scorer_error_is_counted_shown_as_the_reason_and_left_out_of_the_score_plot() -> None:
    errored = ScoreResult(**{"type": "judge", "value": 0.0, "passed": False, "reason": "", "error": "judge: HTTP 500"})
    page = Page(render_html_report([("run", HEADER, [result("a", score("exact", True), errored)])]))
    assert page.row("metrics", "scorer errors") == ["scorer errors", "1"]
    assert page.body_rows("failed")[0][3] == "judge: judge: HTTP 500"
    assert len(page.images()) == 3  # the judge's panel says "no scores" rather than plotting a 0


def test_written_from_a_results_file_to_a_new_folder(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    writer = ResultsWriter.open(results_path, HEADER)
    for item in single_run():
        writer.write(item)
    writer.close()
    header, results = load_results(results_path)
    path = write_html_report(tmp_path / "reports" / "run.html", [("model-a", header, results)])
    assert path == tmp_path / "reports" / "run.html"
    assert Page(path.read_text(encoding="utf-8")).row("pass-rates", "all results")[1] == "2/4"


@pytest.mark.parametrize("count", [0, 3])
def test_a_report_is_of_one_or_two_runs(count: int) -> None:
    with pytest.raises(ValueError, match="one run or of two"):
        render_html_report([("run", HEADER, [])] * count)
