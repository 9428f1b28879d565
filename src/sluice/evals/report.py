"""A self-contained HTML report of an eval run, or of a baseline and a candidate run side by side: pass rates with
95 % intervals, plots (scores by scorer, pass rate by tag, each case before/after, latency), the cases that flipped
and the cases that failed. One file that needs no network: inline CSS, PNG plots as data URIs, every answer escaped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from pathlib import Path

from sluice.evals.gate import flipped_cases
from sluice.evals.report_plots import CaseOutcome, RunView, case_outcomes, errored, plots, verdict_counts
from sluice.evals.results import CaseResult, PassRate, RunHeader, summarize

Run = tuple[str, RunHeader, list[CaseResult]]  # (label, header, results); a list of one run or of two

TEXT_CHARS = 400  # answers and reasons are cut to this many characters: the report stays readable and small
MAX_FAILED_ROWS = 200  # failing results beyond these are counted, not listed

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 2rem auto;
       max-width: 1150px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #dde3ea; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #dde3ea; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f6f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.section td { background: #f8fafc; font-weight: 600; color: #52606d; }
td.up { color: #1e7e34; font-weight: 600; } td.down { color: #b03a2e; font-weight: 600; }
tr.regression td:first-child { border-left: 4px solid #c0392b; }
tr.fix td:first-child { border-left: 4px solid #27ae60; }
td.text { white-space: pre-wrap; word-break: break-word; font: .8rem/1.35 ui-monospace, Menlo, Consolas, monospace;
          max-width: 26rem; }
.note { color: #616e7c; font-size: .85rem; } .empty { color: #9aa5b1; font-style: italic; }
.warn { border-left: 4px solid #e67e22; background: #fff8f0; padding: .5rem .8rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eef1f4; }
figcaption { color: #616e7c; font-size: .85rem; }
"""


def render_html_report(runs: Sequence[Run], *, title: str | None = None) -> str:
    """The report as one HTML document: of a run, or of a baseline (first) and a candidate (second) run."""
    if len(runs) not in (1, 2):
        raise ValueError(f"a report is of one run or of two (baseline, candidate), not {len(runs)}")
    views = [RunView(label, header, list(results), summarize(results), case_outcomes(results))
             for label, header, results in runs]
    last = views[-1]
    heading = title or (f"Eval report — {last.header.suite} on {last.header.model}" if len(views) == 1 else
                        f"Eval comparison — {last.header.suite}: {views[0].label} → {last.label}")
    body = ["<h2>Runs</h2>", _runs_table(views)]
    if len(views) == 2 and views[0].header.suite_hash != last.header.suite_hash:
        body.append('<p class="warn">The runs are of different suites (their hashes differ): case changes are '
                    "over the cases both runs have.</p>")
    body += ["<h2>Pass rates</h2>", _pass_rate_table(views),
             '<p class="note">A result whose call errored counts as failed; per scorer, the rate is over the scores '
             "given. Intervals are 95 % Wilson intervals: a change smaller than them may be noise.</p>",
             "<h2>Run metrics</h2>", _metrics_table(views), "<h2>Plots</h2>", *plots(views)]
    if len(views) == 2:
        body += ["<h2>Changed cases</h2>", *_changes(views[0], last)]
    heading_failed = "Failing results" + (f" of {last.label}" if len(views) == 2 else "")
    body += [f"<h2>{escape(heading_failed)}</h2>", _failed_table(last.summary.failed)]
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>\n<h1>{escape(heading)}</h1>"
            f'<p class="note">generated {generated} by sluice eval report</p>\n' + "\n".join(body)
            + "\n</body></html>\n")


def write_html_report(path: str | Path, runs: Sequence[Run], *, title: str | None = None) -> Path:
    """Write `render_html_report(runs)` to `path` (UTF-8, parent folders made); the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html_report(runs, title=title), encoding="utf-8")
    return target


def _rate(rate: PassRate) -> list[str]:
    """The cells of a pass rate: passed/total, the rate, its interval ("—" without data)."""
    if not rate.total:
        return [_num("0/0"), _num("—"), _num("—")]
    low, high = rate.interval
    return [_num(f"{rate.passed}/{rate.total}"), _num(f"{100 * (rate.rate or 0):.1f} %"),
            _num(f"{100 * low:.1f}–{100 * high:.1f} %")]


def _delta(before: PassRate | None, after: PassRate | None) -> str:
    if before is None or after is None or before.rate is None or after.rate is None:
        return _num("—")
    points = 100 * (after.rate - before.rate)
    direction = "up" if points > 0 else "down" if points < 0 else ""
    return f'<td class="num {direction}">{points:+.1f} pp</td>'


def _pass_rate_table(views: list[RunView]) -> str:
    headers = [""]
    for view in views:
        headers += [f"{view.label}: passed", "rate", "95 % interval"]
    if len(views) == 2:
        headers.append("Δ rate")
    sections = [("overall", {"all results": [view.summary.overall for view in views]}),
                ("by scorer", _by_key(views, "by_scorer")), ("by tag", _by_key(views, "by_tag"))]
    rows = []
    for section, named in sections:
        if not named:
            continue
        rows.append(f'<tr class="section"><td colspan="{len(headers)}">{escape(section)}</td></tr>')
        for name, rates in named.items():
            cells = [f"<td>{escape(name)}</td>"]
            for rate in rates:
                cells += _rate(rate or PassRate(0, 0))
            if len(views) == 2:
                cells.append(_delta(*rates))
            rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(headers, rows, "pass-rates")


def _by_key(views: list[RunView], attribute: str) -> dict[str, list[PassRate | None]]:
    names = sorted({name for view in views for name in getattr(view.summary, attribute)})
    return {name: [getattr(view.summary, attribute).get(name) for view in views] for name in names}


def _runs_table(views: list[RunView]) -> str:
    rows: list[tuple[str, list[str]]] = [
        ("suite", [view.header.suite for view in views]),
        ("suite hash", [view.header.suite_hash[:12] for view in views]),
        ("model", [view.header.model for view in views]), ("gateway", [view.header.base_url for view in views]),
        ("started at", [view.header.started_at for view in views]),
        ("repeats", [str(view.header.repeats) for view in views]),
        ("cases", [str(len(view.outcomes)) for view in views]),
        ("results", [str(len(view.results)) for view in views])]
    html_rows = [f"<tr><th>{escape(name)}</th>" + "".join(f"<td>{escape(value)}</td>" for value in values) + "</tr>"
                 for name, values in rows]
    return _table(["", *(view.label for view in views)], html_rows, "runs")


def _metrics_table(views: list[RunView]) -> str:
    def seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} s"

    summaries = [view.summary for view in views]
    rows: list[tuple[str, list[str]]] = [
        ("errored calls", [str(summary.errors) for summary in summaries]),
        ("scorer errors", [str(getattr(summary, "scorer_errors", 0)) for summary in summaries]),
        ("latency P50 (answered)", [seconds(summary.latency_p50_s) for summary in summaries]),
        ("latency P95 (answered)", [seconds(summary.latency_p95_s) for summary in summaries]),
        ("prompt tokens", [f"{summary.prompt_tokens:,}" for summary in summaries]),
        ("completion tokens", [f"{summary.completion_tokens:,}" for summary in summaries]),
        ("cost", ["—" if summary.cost_usd is None else f"${summary.cost_usd:.4f}" for summary in summaries])]
    html_rows = [f"<tr><td>{escape(name)}</td>" + "".join(_num(value) for value in values) + "</tr>"
                 for name, values in rows]
    return _table(["", *(view.label for view in views)], html_rows, "metrics")


def _changes(before: RunView, after: RunView) -> list[str]:
    counts = verdict_counts(before, after)
    word = {True: "pass", False: "fail"}
    matrix = [f"<tr><th>{escape(before.label)}: {word[was]}</th>"
              + "".join(_num(str(counts[was, now])) for now in (True, False)) + "</tr>" for was in (True, False)]
    only = (f"Cases only in {before.label}: {len(before.outcomes.keys() - after.outcomes.keys())}; "
            f"only in {after.label}: {len(after.outcomes.keys() - before.outcomes.keys())}.")
    rows = []
    for flip in flipped_cases(before.results, after.results):  # regressions first
        was, now = before.outcomes[flip.case_id], after.outcomes[flip.case_id]
        rows.append(f'<tr class="{"regression" if flip.regressed else "fix"}"><td>{escape(flip.case_id)}</td>'
                    f"<td>{'pass → fail' if flip.regressed else 'fail → pass'}</td>"
                    + _num(f"{was.passed}/{was.repeats} · {was.mean_score:.2f}")
                    + _num(f"{now.passed}/{now.repeats} · {now.mean_score:.2f}")
                    + _text(_why((now if flip.regressed else was).shown)) + _text(was.shown.answer)
                    + _text(now.shown.answer) + "</tr>")
    return [_table(["", f"{after.label}: pass", f"{after.label}: fail"], matrix, "flip-counts"),
            f'<p class="note">A case passes when at least half of its repeats passed. {escape(only)}</p>',
            _table(["case", "change", f"{before.label} (passed · mean score)", f"{after.label} (passed · mean score)",
                    "why the failing side failed", f"{before.label} answer", f"{after.label} answer"], rows, "flips")
            if rows else "<p>No case changed verdict.</p>"]


def _failed_table(failed: list[CaseResult]) -> str:
    if not failed:
        return "<p>No failing results.</p>"
    rows = [f"<tr><td>{escape(result.case_id)}</td>{_num(str(result.repeat))}<td>{escape(', '.join(result.tags))}"
            f"</td>{_text(_why(result))}{_text(result.answer)}</tr>" for result in failed[:MAX_FAILED_ROWS]]
    more = len(failed) - MAX_FAILED_ROWS
    note = f'<p class="note">And {more} more failing results, not listed.</p>' if more > 0 else ""
    return _table(["case", "repeat", "tags", "why", "answer"], rows, "failed") + note


def _why(result: CaseResult) -> str:
    if result.error is not None:
        return f"call error: {result.error}"
    return "\n".join(f"{score.type}: {getattr(score, 'error', None) or score.reason}"
                     for score in result.scores if not score.passed or errored(score))


def _num(value: str) -> str:
    return f'<td class="num">{escape(value)}</td>'


def _text(value: str | None) -> str:
    """A cell of untrusted text (an answer, a reason): cut to TEXT_CHARS and escaped."""
    if value is None:
        return '<td class="text empty">(no answer)</td>'
    if len(value) > TEXT_CHARS:
        value = f"{value[:TEXT_CHARS]}… ({len(value):,} characters)"
    return f'<td class="text">{escape(value)}</td>'


def _table(headers: list[str], rows: list[str], table_id: str) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


__all__ = ["CaseOutcome", "Run", "case_outcomes", "render_html_report", "write_html_report"]
