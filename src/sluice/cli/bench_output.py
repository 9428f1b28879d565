"""What `bench run` and `bench sweep` show and write: live progress, the summary tables, the result files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from sluice.cli.common import console
from sluice.loadtest import LiveStats

if TYPE_CHECKING:
    from sluice.loadtest.metrics import RequestResult
    from sluice.loadtest.sweep import SweepPlan, SweepStep


class LiveColumn(ProgressColumn):
    """req/s, tok/s, recent median TTFT and E2EL, failures: from the task's `live` field (a `LiveStats`)."""

    def render(self, task: Task) -> Text:
        live = task.fields.get("live")
        return Text(live.line(task.elapsed) if isinstance(live, LiveStats) else "", style="cyan")


def progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    LiveColumn(), console=console, transient=True)


class RunBar:
    """One bar over a run's requests, with its live figures."""

    def __init__(self, bars: Progress, description: str, total: int | None, *, visible: bool = True) -> None:
        self.bars, self.live = bars, LiveStats()
        self.task: TaskID = bars.add_task(description, total=total, visible=visible, live=self.live)

    def reset(self, description: str, total: int | None) -> None:
        self.live = LiveStats()
        self.bars.reset(self.task, total=total, description=description, live=self.live)

    def done(self, result: RequestResult) -> None:
        self.live.record(result)
        self.bars.advance(self.task)


class SweepBars:
    """The sweep's progress: one bar over the steps, one (with live figures) over the current step's requests."""

    def __init__(self, bars: Progress, plan: SweepPlan) -> None:
        self.bars, self.plan = bars, plan
        self.overall: TaskID = bars.add_task("sweep steps", total=len(plan.values))
        self.step = RunBar(bars, "step", None)

    def step_started(self, index: int, value: float, requests: int | None) -> None:
        self.step.reset(f"{self.plan.dimension} {value:g}", requests)

    def request_done(self, result: RequestResult) -> None:
        self.step.done(result)

    def step_done(self, step: SweepStep) -> None:
        self.bars.advance(self.overall)
        verdict = "[green]PASS[/]" if step.verdict.passed else f"[red]FAIL[/] ({escape(str(step.verdict.kind))})"
        self.bars.console.print(f"{self.plan.dimension} {step.value:g}: {verdict}")


@dataclass(slots=True, frozen=True)
class Outputs:
    """The files a run or sweep writes (each None / False when not asked for)."""

    result: Path | None = None
    save_detailed: bool = False  # per-request arrays in the result JSON too
    save_requests: bool = True  # RESULT.requests.jsonl beside the result
    csv: Path | None = None
    plot_dir: Path | None = None
    report: Path | None = None


def write_outputs(document: Mapping[str, Any], outputs: Outputs, *, sweep: bool) -> None:
    from sluice.loadtest import (
        SCRAPES_FIELD,
        document_records,
        records_path,
        render_report,
        run_figures,
        scrapes_path,
        sweep_figures,
        without_detail,
        write_csv,
        write_figures,
        write_jsonl,
    )

    for path in (outputs.result, outputs.csv, outputs.report):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if outputs.result is not None:
        saved: Mapping[str, Any] = {key: value for key, value in document.items() if key != SCRAPES_FIELD}
        if not outputs.save_detailed:
            saved = ({**saved, "steps": [without_detail(step) for step in document["steps"]]} if sweep
                     else without_detail(document))
        outputs.result.write_text(json.dumps(saved, indent=2) + "\n")
        console.print(f"results written to {escape(str(outputs.result))}")
        if outputs.save_requests and (records := document_records(document)):
            write_jsonl(records_path(outputs.result), records)
            console.print(f"per-request records written to {escape(str(records_path(outputs.result)))}")
        if scrapes := document.get(SCRAPES_FIELD):
            write_jsonl(scrapes_path(outputs.result), scrapes)
            console.print(f"server metrics written to {escape(str(scrapes_path(outputs.result)))}")
    if outputs.csv is not None:
        rows = write_csv(outputs.csv, document_records(document))
        console.print(f"{rows} per-request rows written to {escape(str(outputs.csv))}")
    if outputs.plot_dir is None and outputs.report is None:
        return
    figures = sweep_figures(document) if sweep else run_figures(document)
    if outputs.plot_dir is not None:
        for path in write_figures(figures, outputs.plot_dir):
            console.print(f"plot written to {escape(str(path))}")
    if outputs.report is not None:
        outputs.report.write_text(render_report(document, figures))
        console.print(f"report written to {escape(str(outputs.report))}")


def summary_table(result: Mapping[str, Any]) -> Table:
    from sluice.loadtest import error_rows, summary_sections

    table = Table(title="Serving Benchmark Result", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for title, rows in summary_sections(result):
        if title:
            table.add_section()
            table.add_row(f"[bold]{escape(title)}[/]", "")
        for label, value in rows:
            table.add_row(escape(label), value)
    errors = error_rows(result)
    if errors:
        table.add_section()
        for error, kind, count, message in errors:
            table.add_row(f"Errors: {escape(error)} ({kind})" + (f"\n  [dim]{escape(message[:70])}[/]"
                                                                 if message else ""), str(count))
    return table


def print_failure(result: Mapping[str, Any]) -> None:
    """Say loudly that nothing succeeded (or that the run stopped early), with the first error and the URL."""
    if result.get("aborted"):
        console.print(f"[bold red]stopped early:[/] {escape(str(result['aborted']))} — is the URL right? "
                      "(--base-url with or without /v1, --endpoint chat or completions)")
    if not result.get("completed"):
        console.print(f"[bold red]no request succeeded:[/] all {result.get('num_prompts')} failed; first error: "
                      f"{escape(str(result.get('first_error')))}; POST {escape(str(result.get('url')))}")


def sweep_table(document: Mapping[str, Any]) -> Table:
    from sluice.loadtest import sweep_headers, sweep_rows

    table = Table(title=f"Sweep over {document['sweep']['dimension']} (latencies in ms)")
    headers = sweep_headers(document)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == len(headers) - 1 else "right")
    for cells, passed, _ in sweep_rows(document):
        table.add_row(*cells[:-1], f"[green]{cells[-1]}[/]" if passed else f"[red]{escape(cells[-1])}[/]")
    return table


def print_headline(document: Mapping[str, Any]) -> None:
    from sluice.loadtest import sweep_headline

    sweep = document["sweep"]
    for index, line in enumerate(sweep_headline(document)):
        good = sweep["largest_passing"] is not None if index == 0 else sweep["broke_at"] is None
        console.print(f"[bold {'green' if good else 'red'}]{escape(line)}[/]")
