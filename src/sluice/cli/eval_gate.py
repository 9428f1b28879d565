"""`sluice eval gate` and `sluice eval compare`: a run checked against thresholds and a baseline with intervals
(exit 0 passed, 1 failed, 2 error), and two runs side by side; the tables they print, and recording a run
against its registry version."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sluice.cli.common import admin_call, console, err_console, exit_with
from sluice.cli.eval_run import execute_run, load_suite_or_exit, read_results
from sluice.cli.eval_targets import Target, resolve_target
from sluice.evals import (
    CaseResult,
    Comparison,
    Estimate,
    GateError,
    GateReport,
    MetricError,
    RunHeader,
    Suite,
    Threshold,
    cases_from_record,
    compare_runs,
    evaluate_gate,
    higher_is_better,
    parse_threshold,
    run_record,
)
from sluice.registry import RegistryError, parse_ref

MAX_FLIPS_SHOWN = 20
Confidence = Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                           help="Two-sided confidence of the intervals.")]


def gate(suite_path: Path, target: str, model: str | None, side: str | None, mins: list[str] | None,
         maxes: list[str] | None, regressions: list[str] | None, baseline: str | None, confidence: float,
         strict: bool, repeats: int, out: Path, resume: bool, record: bool, html: Path | None, as_json: bool,
         url: str, api_key: str | None, master_key: str | None, judge_url: str | None, concurrency: int,
         timeout_s: float) -> None:
    """The body of `sluice eval gate` (cli/evals.py declares its options)."""
    try:
        thresholds = [*(parse_threshold("min", text) for text in mins or ()),
                      *(parse_threshold("max", text) for text in maxes or ()),
                      *(parse_threshold("max_regression", text) for text in regressions or ())]
    except GateError as error:
        exit_with(str(error), code=2)
    if not thresholds:
        exit_with("give at least one of --min, --max, --max-regression (e.g. --min accuracy=0.75)", code=2)
    suite = load_suite_or_exit(suite_path)
    resolved = resolve_target(target, url=url, master_key=master_key, model=model, side=side)
    base = _baseline(baseline, suite, resolved, url, master_key) if baseline is not None else None
    if base is None and any(threshold.kind == "max_regression" for threshold in thresholds):
        exit_with("--max-regression needs a --baseline (a results file, or a registry alias/version such as "
                  "production)", code=2)
    header, results = execute_run(suite, resolved, out=out, resume=resume, api_key=api_key,
                                  concurrency=concurrency, repeats=repeats, timeout_s=timeout_s,
                                  judge_url=judge_url)
    if results and all(result.error is not None for result in results):
        exit_with(f"every case errored (first: {results[0].error}); nothing to gate. Fix the target and run "
                  f"again with --resume --out {out}", code=2)
    try:
        report = evaluate_gate(results, thresholds, baseline=None if base is None else base[1],
                               confidence=confidence, strict=strict)
    except (GateError, MetricError) as error:
        exit_with(str(error), code=2)
    if record and resolved.registry is not None:
        _record(resolved, header, results, report.to_json(), url, master_key)
    if html is not None:
        _html(html, [*([("baseline " + base[0], *_as_run(base, header))] if base else []),
                     (resolved.label, header, results)])
    if as_json:
        print(json.dumps({"target": resolved.label, "results": str(out), **report.to_json()}, indent=2))
    else:
        render_gate(report, resolved.label, None if base is None else base[0])
    raise typer.Exit(report.exit_code)


def compare(baseline_path: Path, candidate_path: Path, confidence: float, html: Path | None, as_json: bool) -> None:
    """The body of `sluice eval compare`."""
    base_header, base = read_results(baseline_path)
    cand_header, cand = read_results(candidate_path)
    if base_header.suite_hash != cand_header.suite_hash:
        exit_with(f"the runs are of different suites (hash {base_header.suite_hash[:12]} vs "
                  f"{cand_header.suite_hash[:12]}): compare runs of the same cases", code=2)
    comparison = compare_runs(base, cand, confidence)
    if html is not None:
        _html(html, [(f"baseline: {base_header.model}", base_header, base),
                     (f"candidate: {cand_header.model}", cand_header, cand)])
    if as_json:
        print(json.dumps(comparison.to_json(), indent=2))
        return
    render_comparison(comparison, base_header.model, cand_header.model)


def record_run(target: Target, header: RunHeader, results: list[CaseResult], url: str,
               master_key: str | None) -> None:
    """`eval run --record`: keep the run against its registry version."""
    if target.registry is None:
        exit_with("--record keeps a run against a registry version: give --target MODEL@VERSION", code=2)
    _record(target, header, results, None, url, master_key)


def _record(target: Target, header: RunHeader, results: list[CaseResult], gate_json: dict[str, Any] | None,
            url: str, master_key: str | None) -> None:
    assert target.registry is not None
    name, version = target.registry
    stored = admin_call("POST", url, f"/admin/models/{_seg(name)}/versions/{version}/evals", master_key,
                        run_record(header, results, target=target.label, gate=gate_json), code=2)
    err_console.print(f"recorded as eval run {stored['id']} of {name}@{version}")


def _baseline(text: str, suite: Suite, target: Target, url: str,
              master_key: str | None) -> tuple[str, list[CaseResult]]:
    """(label, results) of the baseline: a results file of the same suite, or a registry version's stored run."""
    path = Path(text)
    if path.exists():
        header, results = read_results(path)
        if header.suite_hash != suite.hash:
            exit_with(f"--baseline {text}: a run of suite hash {header.suite_hash[:12]}, not {suite.hash[:12]}: a "
                      "baseline must be a run of the same cases and scorers", code=2)
        return f"{text} ({header.model})", results
    if "@" not in text and target.registry is None:
        exit_with(f"--baseline {text!r}: not a results file; a registry alias or version needs MODEL@REF (e.g. "
                  "support@production) or a --target MODEL@VERSION", code=2)
    reference = text if "@" in text else f"{target.registry[0]}@{text}"  # type: ignore[index]
    try:
        name, ref = parse_ref(reference)
    except RegistryError as error:
        exit_with(f"--baseline: {error}", code=2)
    query = urllib.parse.urlencode({"ref": "latest" if ref is None else str(ref), "suite_hash": suite.hash})
    stored = admin_call("GET", url, f"/admin/models/{_seg(name)}/baseline?{query}", master_key, code=2)
    return (f"{name}@{stored['version']} (eval run {stored['id']})", cases_from_record(stored["cases"]))


def _as_run(base: tuple[str, list[CaseResult]], header: RunHeader) -> tuple[RunHeader, list[CaseResult]]:
    return RunHeader(header.suite, header.suite_hash, base[0], "", "", header.repeats), base[1]


def _html(path: Path, runs: list[tuple[str, RunHeader, list[CaseResult]]]) -> None:
    from sluice.evals import write_html_report

    written = write_html_report(path, runs)
    err_console.print(f"report: {written}")


def render_gate(report: GateReport, target: str, baseline: str | None) -> None:
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    table = Table(title=escape(f"gate on {target}" + (f" against {baseline}" if baseline else "")
                               + f" ({report.confidence:.0%} intervals)"))
    for column in ("check", "observed", "interval", "baseline", "status"):
        table.add_column(column, justify="left" if column in ("check", "status") else "right")
    for check in report.checks:
        base = "-" if check.baseline is None else _plain(check.baseline.value)
        table.add_row(escape(_check_text(check.threshold)), _plain(check.observed.value), _span(check.observed), base,
                      f"[{colours[check.status]}]{check.status}[/]")
    console.print(table)
    _render_flips(report)
    verdict = {"pass": "passed", "fail": "FAILED", "inconclusive": "inconclusive"}[report.status]
    console.print(f"[bold {colours[report.status]}]gate {verdict}[/]" + (
        " (--strict: inconclusive fails)" if report.status == "inconclusive" and report.strict else
        " (not shown to fail at this confidence: more cases or --repeats would decide it)"
        if report.status == "inconclusive" else ""))


def render_comparison(comparison: Comparison, baseline: str, candidate: str) -> None:
    table = Table(title=escape(f"{candidate} vs {baseline}: {comparison.shared_cases} shared cases, "
                               f"{comparison.confidence:.0%} paired intervals"))
    for column in ("metric", "baseline", "candidate", "worse by", "interval", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    colours = {"worse": "red", "better": "green"}
    for change in comparison.changes:
        colour = colours.get(change.verdict)
        table.add_row(escape(change.metric), _plain(change.baseline.value), _plain(change.candidate.value),
                      _plain(change.worse.value), _span(change.worse),
                      f"[{colour}]{change.verdict}[/]" if colour else change.verdict)
    console.print(table)
    if comparison.only_baseline or comparison.only_candidate:
        console.print(f"cases only in the baseline: {comparison.only_baseline}, only in the candidate: "
                      f"{comparison.only_candidate} (left out of the paired changes)")
    _render_flips(comparison)


def _render_flips(report: GateReport | Comparison) -> None:
    if not report.flips:
        return
    table = Table(title=f"{len(report.flips)} flipped case{'s' if len(report.flips) != 1 else ''}, regressions first")
    for column in ("case", "pass rate before", "after", "why it fails now"):
        table.add_column(column)
    for flip in report.flips[:MAX_FLIPS_SHOWN]:
        table.add_row(escape(flip.case_id), f"{flip.before:.0%}", f"[{'red' if flip.regressed else 'green'}]"
                      f"{flip.after:.0%}[/]", escape(flip.reason or "-"))
    console.print(table)
    if len(report.flips) > MAX_FLIPS_SHOWN:
        console.print(f"... and {len(report.flips) - MAX_FLIPS_SHOWN} more (--json lists them all)")


def _check_text(threshold: Threshold) -> str:
    if threshold.kind == "max_regression":
        direction = "drops" if higher_is_better(threshold.metric) else "rises"
        return f"{threshold.metric} {direction} by at most {threshold.limit:g}"
    return threshold.text()


def _span(found: Estimate) -> str:
    return f"{_plain(found.low)} .. {_plain(found.high)}"


def _plain(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _seg(text: str) -> str:
    return urllib.parse.quote(text, safe="")


__all__ = ["compare", "gate", "record_run", "render_comparison", "render_gate"]
