"""A self-contained HTML report of a bench run or sweep: tables, errors, and the PNG plots inlined as data URIs."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from sluice.loadtest.plots import run_figures, sweep_figures
from sluice.loadtest.records import has_detail
from sluice.loadtest.tables import (
    config_rows,
    error_rows,
    fmt,
    summary_sections,
    sweep_headers,
    sweep_headline,
    sweep_rows,
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
tr.section td { background: #fafafa; font-weight: 600; }
td.pass { color: #1e7e34; font-weight: 600; } td.fail { color: #a93226; font-weight: 600; }
tr.fail td { background: #fdecea; }
.headline { font-size: 1.05rem; padding: .6rem 1rem; border-left: 4px solid #2c3e50; background: #f7f9fb; }
.note { color: #666; font-size: .85rem; } img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
"""


def is_sweep(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("sweep"), Mapping) and isinstance(document.get("steps"), list)


def render_report(document: Mapping[str, Any], figures: Mapping[str, bytes] | None = None,
                  title: str | None = None) -> str:
    """The report of a run or sweep result document; `figures` (name -> PNG) are drawn when not given."""
    sweep = is_sweep(document)
    if figures is None:
        figures = sweep_figures(document) if sweep else run_figures(document)
    model = document.get("model_id", "?")
    heading = title or f"sluice bench {'sweep' if sweep else 'run'} — {model}"
    body = _sweep_body(document) if sweep else _run_body(document)
    body.append("<h2>Plots</h2>")
    if figures:
        body.extend(_image(name, png) for name, png in figures.items())
    else:
        body.append('<p class="note">No plots: run plots need per-request data, the records saved beside the '
                    "result (<code>RESULT.requests.jsonl</code>, unless <code>--no-save-requests</code>) or "
                    "<code>--save-detailed</code>.</p>")
    body.append("<h2>Configuration</h2>")
    body.append(_table(["setting", "value"], config_rows(document)))
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{escape(heading)}</h1>"
            f'<p class="note">POST {escape(str(document.get("url") or document.get("base_url", "")))}'
            f" · generated {generated} by sluice bench</p>\n" + "\n".join(body) + "\n</body></html>\n")


def _run_body(result: Mapping[str, Any]) -> list[str]:
    body = []
    if result.get("aborted"):
        body.append(f'<div class="headline">Stopped early: {escape(str(result["aborted"]))}</div>')
    if not result.get("completed"):
        body.append(f'<div class="headline">No request succeeded: all {escape(str(result.get("num_prompts")))} '
                    f'failed; first error: {escape(str(result.get("first_error")))}</div>')
    body += ["<h2>Summary</h2>", _summary_table(result)]
    body += _errors_section(result)
    if not has_detail(result):
        body.append('<p class="note">This result has no per-request data (no <code>RESULT.requests.jsonl</code> '
                    "beside it, no <code>--save-detailed</code>).</p>")
    return body


def _sweep_body(document: Mapping[str, Any]) -> list[str]:
    sweep = document["sweep"]
    body = ['<div class="headline">' + "<br>".join(escape(line) for line in sweep_headline(document)) + "</div>",
            "<h2>Sweep</h2>",
            _table(["setting", "value"], [("dimension", sweep["dimension"]),
                                          ("values", ", ".join(f"{v:g}" for v in sweep["values"])),
                                          ("SLOs (goodput)", fmt(sweep.get("goodput"))),
                                          ("SLO percentile", f"P{sweep.get('slo_percentile'):g}"),
                                          ("max error rate", f"{100 * sweep['max_error_rate']:.2f} %"),
                                          ("continue after a failing step", str(sweep.get("keep_going")))]),
            "<h2>Steps</h2>"]
    headers = [*sweep_headers(document), "why"]
    rows_html = []
    for cells, passed, reasons in sweep_rows(document):
        cls = "pass" if passed else "fail"
        tds = "".join(f'<td class="num">{escape(c)}</td>' for c in cells[:-1])
        rows_html.append(f'<tr class="{cls}">{tds}<td class="{cls}">{escape(cells[-1])}</td>'
                         f"<td>{escape(reasons)}</td></tr>")
    body.append(_table_html(headers, rows_html))
    for step in document["steps"]:
        if step.get("failed"):
            body += _errors_section(step, f"Errors at {sweep['dimension']} {step['sweep_value']:g}")
    return body


def _summary_table(result: Mapping[str, Any]) -> str:
    rows = []
    for title, section in summary_sections(result):
        if title:
            rows.append(f'<tr class="section"><td colspan="2">{escape(title)}</td></tr>')
        rows += [f'<tr><td>{escape(label)}</td><td class="num">{escape(value)}</td></tr>' for label, value in section]
    return _table_html(["metric", "value"], rows)


def _errors_section(result: Mapping[str, Any], title: str = "Errors by class") -> list[str]:
    rows = error_rows(result)
    if not rows:
        return [f"<h2>{escape(title)}</h2>", "<p>No failed requests.</p>"]
    return [f"<h2>{escape(title)}</h2>",
            _table(["error class", "kind", "count", "example (server's message)"],
                   [(error, kind, str(count), message) for error, kind, count, message in rows])]


def _table(headers: list[str], rows: Iterable[tuple[str, ...]]) -> str:
    return _table_html(headers, ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                                 for row in rows])


def _table_html(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}"></figure>'
