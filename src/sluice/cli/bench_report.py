"""`bench report` and `bench compare`: work on saved results (HTML report, CSV export, deltas and a CI gate)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from sluice.cli.common import console, err_console

if TYPE_CHECKING:
    from sluice.loadtest.compare import Delta


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(2)


def report_cmd(result_file: Path = typer.Argument(..., help="A result JSON from `bench run` or `bench sweep` "
                                                  "(its per-request records, RESULT.requests.jsonl, are read when "
                                                  "they are beside it)."),
               out: Path | None = typer.Option(None, "--out", help="HTML file to write."),
               plot_dir: Path | None = typer.Option(None, "--plot-dir", help="Also write the PNG plots here."),
               csv: Path | None = typer.Option(None, "--csv", help="Export the per-request records as CSV."),
               title: str | None = typer.Option(None, "--title", help="Report title (default: command and model).")
               ) -> None:
    """Render a saved result as a self-contained HTML report (tables, errors, embedded PNG plots; no network),
    and/or export its per-request records as CSV."""
    from sluice.loadtest import (
        document_records,
        is_sweep,
        load_beside,
        render_report,
        run_figures,
        sweep_figures,
        write_csv,
        write_figures,
    )

    if out is None and plot_dir is None and csv is None:
        raise fail("nothing to do: give --out FILE.html, --plot-dir DIR and/or --csv FILE.csv")
    try:
        document = json.loads(result_file.read_text())
        if not isinstance(document, dict) or not ("steps" in document or "completed" in document):
            raise ValueError("not a bench run or sweep result")
        document = load_beside(document, result_file)
        figures = sweep_figures(document) if is_sweep(document) else run_figures(document)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"{result_file}: {exc}") from None
    if csv is not None:
        rows = write_csv(csv, document_records(document))
        console.print(f"{rows} per-request rows written to {escape(str(csv))}")
    if plot_dir is not None:
        write_figures(figures, plot_dir)
    if out is not None:
        out.write_text(render_report(document, figures, title))
        console.print(f"report written to {escape(str(out))}")


def compare_cmd(baseline: Path = typer.Argument(..., help="Result A (the baseline), from `bench run --save-result`."),
                candidate: Path = typer.Argument(..., help="Result B (the candidate)."),
                fail_if: list[str] = typer.Option([], "--fail-if", help="Repeatable rule, tested on B against A: "
                                                  "'METRIC OP [+|-]NUMBER[%|ms|s]'. 'ttft_p99 > +10%' (relative "
                                                  "change), 'p99_ttft_ms > +5ms' (signed: B − A), 'failed > 0' "
                                                  "(unsigned: B's value). OP is >, >=, < or <=."),
                as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON.")) -> None:
    """Deltas between two run results (absolute and %) and a CI performance gate.

    Exit status: 0 when no rule trips, 1 when any does, 2 for bad input (unreadable file, unknown metric, bad rule).
    """
    from sluice.loadtest import CompareError, compare_results, load_result, parse_rule

    try:
        a, b = load_result(baseline), load_result(candidate)
        rules = [parse_rule(text, (a, b)) for text in fail_if]
        names = (str(baseline), str(candidate))
        outcomes = [(rule, rule.observed(a, b, names), rule.trips(a, b, names)) for rule in rules]
    except CompareError as exc:
        raise fail(str(exc)) from None
    deltas = compare_results(a, b)
    tripped = any(hit for _, _, hit in outcomes)
    if as_json:
        print(json.dumps({"a": str(baseline), "b": str(candidate), "metrics": [d.to_dict() for d in deltas],
                          "rules": [{"rule": r.text, "metric": r.metric, "mode": r.mode, "observed": _finite(value),
                                     "threshold": r.threshold, "tripped": hit} for r, value, hit in outcomes],
                          "tripped": tripped}, indent=2))
    else:
        console.print(_compare_table(deltas, baseline, candidate))
        for rule, value, hit in outcomes:
            unit = "%" if rule.mode == "relative" else ""
            verdict = "[red]TRIPPED[/]" if hit else "[green]ok[/]"
            console.print(f"{verdict}  {escape(rule.text)}  (observed {value:+.2f}{unit})")
    if tripped:
        raise typer.Exit(1)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _compare_table(deltas: list[Delta], baseline: Path, candidate: Path) -> Table:
    table = Table(title=f"A = {escape(str(baseline))}   B = {escape(str(candidate))}")
    for header in ("metric", "A", "B", "Δ (B − A)", "Δ %"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for delta in deltas:
        color = {True: "green", False: "red", None: "default"}[delta.improved]
        pct = delta.change_pct
        shown = "{:.2%}" if delta.metric == "error_rate" else "{:.0f}" if delta.metric in ("completed", "failed") \
            else "{:.2f}"
        table.add_row(delta.metric, shown.format(delta.a), shown.format(delta.b),
                      f"[{color}]{shown.replace(':', ':+').format(delta.change)}[/]",
                      f"[{color}]{pct:+.1f}%[/]" if math.isfinite(pct) else f"[{color}]{'+' if pct > 0 else '-'}∞[/]")
    return table
