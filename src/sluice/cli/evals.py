"""`sluice eval …`: run an eval suite against a target (a gateway model, a registry version, a raw backend),
keeping each case's result; show a run; gate a run on thresholds and a baseline; compare two runs; write an HTML
report (docs/evals.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import exit_with
from sluice.cli.eval_gate import Confidence, compare, gate, record_run
from sluice.cli.eval_run import execute_run, load_suite_or_exit, read_results, render_failed, render_summary
from sluice.cli.eval_targets import resolve_target
from sluice.evals import summarize

eval_app = typer.Typer(help="Eval suites: run one against a model or registry version, gate it on thresholds and a "
                            "baseline, compare runs, write reports.", no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:4000"

SuiteArg = Annotated[Path, typer.Argument(metavar="SUITE", help="The suite: a .yaml, .yml or .jsonl file.")]
TargetOpt = Annotated[str | None, typer.Option(
    "--target", "-t", show_default=False,
    help="What to evaluate: a gateway model (chat), a registry version (support@3, support@production: run on the "
         "deployment side that serves it, with its params), or a raw OpenAI-compatible URL (http://vllm:8000/v1, "
         "with --model).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", show_default=False,
    help="A gateway model (same as --target NAME); with a URL target the model it serves; with a registry target "
         "the deployment to look in.")]
SideOpt = Annotated[str | None, typer.Option("--side", show_default=False,
                                             help="Pin a gateway model's requests to its stable or candidate side.")]
UrlOpt = Annotated[str, typer.Option("--url", envvar="SLUICE_URL", help="The gateway's base URL.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="SLUICE_API_KEY", show_default=False,
                                               help="A key the gateway (or raw backend) accepts.")]
MasterKeyOpt = Annotated[str | None, typer.Option("--master-key", envvar="SLUICE_MASTER_KEY", show_default=False,
                                                  help="The gateway's admin key: registry targets and --record.")]
JudgeUrlOpt = Annotated[str | None, typer.Option("--judge-url", show_default=False,
                                                 help="The gateway judge and similarity scorers call (default: "
                                                      "--url).")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="Cases in flight at once.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", min=1, help="Times each case is run.")]
OutOpt = Annotated[Path, typer.Option("--out", help="The results file (JSONL).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Go on with --out: skip the cases answered there, "
                                                          "retry the errored ones.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="Seconds per request.")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", show_default=False,
                                              help="Also write an HTML report with plots here.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _target_text(target: str | None, model: str | None) -> tuple[str, str | None]:
    """(target, model option left for it): `--model chat` alone is the gateway model chat."""
    if target is not None:
        return target, model
    if model is not None:
        return model, None
    exit_with("give --target (a gateway model, MODEL@VERSION, or a URL) or --model", code=2)


@eval_app.command("run")
def run(suite_path: SuiteArg, target: TargetOpt = None, model: ModelOpt = None, side: SideOpt = None,
        url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None, master_key: MasterKeyOpt = None,
        judge_url: JudgeUrlOpt = None, concurrency: ConcurrencyOpt = 4, repeats: RepeatsOpt = 1,
        out: OutOpt = Path("results.jsonl"), resume: ResumeOpt = False, timeout_s: TimeoutOpt = 120,
        record: Annotated[bool, typer.Option("--record", help="Keep the run against its registry version (a "
                                                            "later gate's baseline; shown by sluice models show).")]
        = False) -> None:
    """Run every case of SUITE against the target and append each result to --out as it finishes."""
    suite = load_suite_or_exit(suite_path)
    text, model_left = _target_text(target, model)
    resolved = resolve_target(text, url=url, master_key=master_key, model=model_left, side=side)
    if record and resolved.registry is None:
        exit_with("--record keeps a run against a registry version: give --target MODEL@VERSION", code=2)
    header, results = execute_run(suite, resolved, out=out, resume=resume, api_key=api_key, concurrency=concurrency,
                                  repeats=repeats, timeout_s=timeout_s, judge_url=judge_url)
    render_summary(summarize(results), f"{suite.name} on {resolved.label}: {out}")
    if record:
        record_run(resolved, header, results, url, master_key)


@eval_app.command("gate")
def gate_command(
        suite_path: SuiteArg, target: TargetOpt = None, model: ModelOpt = None, side: SideOpt = None,
        mins: Annotated[list[str] | None, typer.Option("--min", help="METRIC=VALUE the metric must reach, e.g. "
                                                                     "accuracy=0.75; repeat.")] = None,
        maxes: Annotated[list[str] | None, typer.Option("--max", help="METRIC=VALUE it must not exceed, e.g. "
                                                                      "unsafe_rate=1%; repeat.")] = None,
        regressions: Annotated[list[str] | None, typer.Option(
            "--max-regression", help="METRIC=AMOUNT it may get worse than the baseline by, e.g. accuracy=0.02; "
                                     "repeat.")] = None,
        baseline: Annotated[str | None, typer.Option(
            "--baseline", show_default=False, help="A results file of the same suite, or a registry alias or "
                                                   "version (production, support@4): its latest recorded run of "
                                                   "this suite.")] = None,
        confidence: Confidence = 0.95,
        strict: Annotated[bool, typer.Option("--strict", help="Fail on inconclusive checks too.")] = False,
        repeats: RepeatsOpt = 1, out: OutOpt = Path("gate-results.jsonl"), resume: ResumeOpt = False,
        record: Annotated[bool, typer.Option("--record/--no-record", help="Keep the run and its verdict against "
                                                                          "a registry target.")] = True,
        html: HtmlOpt = None, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None,
        master_key: MasterKeyOpt = None, judge_url: JudgeUrlOpt = None, concurrency: ConcurrencyOpt = 4,
        timeout_s: TimeoutOpt = 120) -> None:
    """Run SUITE on the target and check it: each threshold decided by a confidence interval. Exit 0 passed,
    1 failed (a shortfall real at --confidence), 2 error. Inconclusive checks pass unless --strict."""
    text, model_left = _target_text(target, model)
    gate(suite_path, text, model_left, side, mins, maxes, regressions, baseline, confidence, strict, repeats, out,
         resume, record, html, as_json, url, api_key, master_key, judge_url, concurrency, timeout_s)


@eval_app.command("compare")
def compare_command(
        baseline: Annotated[Path, typer.Argument(metavar="BASELINE", help="A results file of `eval run`.")],
        candidate: Annotated[Path, typer.Argument(metavar="CANDIDATE", help="A results file of the same suite.")],
        confidence: Confidence = 0.95, html: HtmlOpt = None, as_json: JsonOpt = False) -> None:
    """Two runs of one suite: every metric, the paired change with its interval, and the cases that flipped."""
    compare(baseline, candidate, confidence, html, as_json)


@eval_app.command("show")
def show(results_path: Annotated[Path, typer.Argument(metavar="RESULTS", help="A results file of `eval run`.")],
         failed: Annotated[bool, typer.Option("--failed", help="List the failing cases too.")] = False) -> None:
    """A run's summary, and with --failed its failing cases (id, scorer, reason)."""
    header, results = read_results(results_path)
    summary = summarize(results)
    render_summary(summary, f"{header.suite} on {header.model} (started {header.started_at})")
    if failed:
        render_failed(summary.failed)


@eval_app.command("report")
def report(results_path: Annotated[Path, typer.Argument(metavar="RESULTS", help="A results file of `eval run`.")],
           html: Annotated[Path, typer.Option("--html", help="Where to write the report.")] = Path("report.html"),
           baseline: Annotated[Path | None, typer.Option("--baseline", show_default=False,
                                                         help="A run to show as before (before/after).")] = None
           ) -> None:
    """An HTML report of a run (or a before/after of two): summary, score distributions, per-tag pass rates,
    flipped and failing cases."""
    from sluice.cli.common import err_console
    from sluice.evals import write_html_report

    runs = []
    if baseline is not None:
        base_header, base = read_results(baseline)
        runs.append((f"before: {base_header.model}", base_header, base))
    header, results = read_results(results_path)
    if baseline is not None and runs[0][1].suite_hash != header.suite_hash:
        exit_with("--baseline is a run of another suite (its hash differs): compare runs of the same cases", code=2)
    runs.append((("after: " if baseline is not None else "") + header.model, header, results))
    err_console.print(f"report: {write_html_report(html, runs)}")


__all__ = ["eval_app"]
