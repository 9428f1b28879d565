"""`sluice deploy shadow-report MODEL`: how a model's shadow target compares with what clients were served."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cli.common import console, err_console, read_store
from sluice.cli.logs import resolve_url
from sluice.rollout import (
    DEFAULT_SINCE,
    Latency,
    ShadowReport,
    load_report,
    parse_since,
    report_to_json,
)


def shadow_report(
    model: str = typer.Argument(..., help="The public model name whose shadow pairs to summarise."),
    since: str = typer.Option(DEFAULT_SINCE, "--since", "-s", help="Window start: a duration ago (30m, 24h, 7d, "
                              "2w), an ISO-8601 time (UTC unless it says), unix seconds, or `all`."),
    worst: int = typer.Option(5, "--worst", min=0, max=100, help="How many of the least similar answers to list."),
    db: str | None = typer.Option(None, "--db", help="Store URL, e.g. sqlite:///sluice.db or "
                                  "postgresql://user@host/db (default: sqlite:///sluice.db)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Gateway config file; its store.url is used "
                                       "(takes precedence over --db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Compare MODEL's shadow target with its primary over a window of mirrored requests.

    Pairs and shadow error rate; E2E latency P50/P99 of both sides (and the primary's TTFT); token and cost
    deltas; exact-match rate, mean length ratio and mean similarity (token Jaccard); the worst disagreements.
    Reads the store the gateway writes shadow pairs to, so it works with the gateway stopped."""
    try:
        since_ts = parse_since(since)
    except ValueError as exc:
        _fail(str(exc), code=2)
    url = resolve_url(db, config)
    report = _read(url, lambda engine: load_report(engine, model, since=since_ts, worst=worst))
    if as_json:
        print(json.dumps(report_to_json(report), ensure_ascii=False, indent=2))
        return
    render(report)


def render(report: ShadowReport) -> None:
    window = "all time" if report.since is None else \
        f"since {dt.datetime.fromtimestamp(report.since, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    console.print(f"[bold]Shadow report[/] for [cyan]{escape(report.model)}[/], {window}")
    if not report.pairs:
        console.print("no shadow pairs in this window (is a shadow target configured under "
                      "models.<name>.rollout.shadow, and has traffic arrived?)")
        return
    if report.truncated:
        console.print(f"[yellow]more pairs than a report reads: the newest {report.pairs:,} are summarised[/]")
    rate = f" ({report.shadow_error_rate:.1%})" if report.shadow_error_rate is not None else ""
    by_type = ", ".join(f"{name} {count}" for name, count in report.shadow_errors_by_type.items())
    console.print(f"pairs {report.pairs:,}   compared (both answered) {report.compared:,}   "
                  f"shadow errors {report.shadow_errors:,}{rate}{f' [{by_type}]' if by_type else ''}   "
                  f"primary errors {report.primary_errors:,}")
    console.print(_side_by_side(report))
    console.print(f"agreement: exact match {_pct(report.exact_match_rate)}   length ratio "
                  f"{_num(report.length_ratio_mean, 3)}   similarity {_num(report.similarity_mean, 3)}")
    console.print("[dim](means over compared pairs; length ratio = shadow/primary characters, similarity = "
                  "token Jaccard)[/]")
    if report.worst:
        console.print(_worst_table(report))


def _side_by_side(report: ShadowReport) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold",
                  caption="latency: pairs where both answered; cost: pairs priced on both sides")
    for name in ("", "primary", "shadow", "Δ shadow − primary"):
        table.add_column(name, justify="right" if name else "left", no_wrap=True)
    for label, primary, shadow in (("E2E P50 ms", report.primary_e2e, report.shadow_e2e),
                                   ("E2E P99 ms", report.primary_e2e, report.shadow_e2e)):
        attr = "p50_s" if "P50" in label else "p99_s"
        table.add_row(label, _ms(primary, attr), _ms(shadow, attr), _delta_ms(primary, shadow, attr))
    if report.primary_ttft.count:
        table.add_row("TTFT P50 / P99 ms", f"{_ms(report.primary_ttft, 'p50_s')} / "
                      f"{_ms(report.primary_ttft, 'p99_s')}", "(not streamed)", "")
    table.add_row("prompt tokens (mean)", _num(report.primary_prompt_tokens_mean, 1),
                  _num(report.shadow_prompt_tokens_mean, 1), "")
    table.add_row("completion tokens (mean)", _num(report.primary_completion_tokens_mean, 1),
                  _num(report.shadow_completion_tokens_mean, 1), _signed(report.completion_tokens_delta_mean, 1))
    if report.priced:
        table.add_row(f"cost USD ({report.priced:,} priced)", _num(report.primary_cost_usd, 6),
                      _num(report.shadow_cost_usd, 6), _signed(report.cost_delta_usd, 6))
    else:
        table.add_row("cost USD", "-", "-", "(no pair priced on both sides)")
    return table


def _worst_table(report: ShadowReport) -> Table:
    table = Table(title="worst disagreements (lowest similarity)", title_justify="left", box=None,
                  pad_edge=False, header_style="bold")
    table.add_column("request id", no_wrap=True)  # whole: it is what `sluice logs show` takes
    table.add_column("sim", justify="right", no_wrap=True)
    table.add_column("len ×", justify="right", no_wrap=True)
    table.add_column("primary", overflow="fold", ratio=1)
    table.add_column("shadow", overflow="fold", ratio=1)
    for item in report.worst:
        table.add_row(Text(item.request_id), f"{item.similarity:.3f}", _num(item.length_ratio, 2),
                      Text(item.primary_preview if item.primary_preview is not None else "(not stored)"),
                      Text(item.shadow_preview if item.shadow_preview is not None else "(not stored)"))
    return table


def _ms(latency: Latency, attr: str) -> str:
    value = getattr(latency, attr)
    return "-" if value is None else f"{value * 1000:.1f}"


def _delta_ms(primary: Latency, shadow: Latency, attr: str) -> str:
    a, b = getattr(primary, attr), getattr(shadow, attr)
    return "" if a is None or b is None else f"{(b - a) * 1000:+.1f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _read(url: str, work: Callable[[AsyncEngine], Awaitable[ShadowReport]]) -> ShadowReport:
    return read_store(url, work, what="shadow pairs", hint=" (a store older than this version? start the gateway "
                      "once to migrate it)")


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


__all__ = ["render", "shadow_report"]
