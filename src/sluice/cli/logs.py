"""`sluice logs …`: read the request log — the latest requests as a table, or one request in full."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cli.common import console, err_console, load_or_exit, read_store
from sluice.records import RequestRecord
from sluice.store import request_log

DEFAULT_DB = "sqlite:///sluice.db"

logs_app = typer.Typer(help="Read the request log: the latest requests, or one request in full.",
                       no_args_is_help=True)

_T = TypeVar("_T")

_DB_HELP = f"Store URL, e.g. sqlite:///sluice.db or postgresql://user@host/db (default: {DEFAULT_DB})."
_CONFIG_HELP = "Gateway config file; its store.url is used (takes precedence over --db)."
_JSON_HELP = "Print JSON instead of tables (tail: one object per line)."


def resolve_url(db: str | None, config: Path | None) -> str:
    """`--config`'s store.url, else `--db`, else the default SQLite file."""
    if config is not None:
        return load_or_exit(config).store.url
    return db or DEFAULT_DB


def _run(url: str, work: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    return read_store(url, work)


def _fail(message: str, code: int = 1) -> Any:
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _ms(seconds: float | None, digits: int = 0) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.{digits}f}"


def _tokens(count: int | None, estimated: bool) -> str:
    if count is None:
        return "-"
    return f"~{count}" if estimated else str(count)


def _status(code: int) -> Text:
    style = "green" if code < 400 else "yellow" if code < 500 else "red"
    return Text(str(code), style=style)


def _local_time(created_at: float, today: dt.date) -> str:
    moment = dt.datetime.fromtimestamp(created_at)
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M")


def to_json(record: RequestRecord) -> dict[str, Any]:
    """A record as JSON-ready data, plus `created_at_iso` (UTC) for humans and jq."""
    data = asdict(record)
    data["itl_s"] = list(record.itl_s)
    data["created_at_iso"] = dt.datetime.fromtimestamp(record.created_at, dt.UTC).isoformat()
    return data


def _table(records: list[RequestRecord], *, header: bool = True) -> Table:
    table = Table(show_header=header, box=None, pad_edge=False, header_style="bold", collapse_padding=True,
                  caption="times in ms; ~ marks estimated token counts" if header else None)
    table.add_column("time", no_wrap=True)
    table.add_column("id", overflow="fold", min_width=8)  # folded, never cut: it is what `logs show` takes
    table.add_column("model", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("target", overflow="ellipsis", no_wrap=True, max_width=16)
    for name in ("status", "in", "out", "TTFT", "TPOT", "E2E", "ovh"):
        table.add_column(name, justify="right", no_wrap=True)
    today = dt.date.today()
    for record in records:
        table.add_row(
            _local_time(record.created_at, today), Text(record.request_id), Text(record.model or "-"),
            Text(record.target or "-"), _status(record.status_code),
            _tokens(record.prompt_tokens, record.tokens_estimated),
            _tokens(record.completion_tokens, record.tokens_estimated),
            _ms(record.ttft_s), _ms(record.tpot_s, 1), _ms(record.e2e_s), _ms(record.overhead_s, 2),
        )
    return table


def _emit(records: list[RequestRecord], as_json: bool, *, header: bool = True) -> None:
    if as_json:
        for record in records:
            print(json.dumps(to_json(record), ensure_ascii=False), flush=True)
    elif records:
        console.print(_table(records, header=header))


@logs_app.command("tail")
def tail(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    lines: int = typer.Option(20, "-n", "--lines", min=0, help="How many of the latest requests to show."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only requests for this public model name."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep polling and print requests as they are "
                                "written (Ctrl-C stops)."),
    interval_s: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between polls with --follow."),
    stop_after_s: float | None = typer.Option(None, "--stop-after", min=0,
                                              help="With --follow: stop after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Show the latest requests, oldest first: status, tokens, TTFT, TPOT, E2E and gateway overhead."""
    url = resolve_url(db, config)

    async def work(engine: AsyncEngine) -> None:
        cursor = await request_log.newest_row_id(engine)
        latest = await request_log.recent(engine, lines, model=model) if lines else []
        latest.reverse()
        if not latest and not follow and not as_json:
            console.print("no requests logged yet" + (f" for model {model!r}" if model else ""))
        _emit(latest, as_json)
        if follow:
            await _follow(engine, cursor, {r.request_id for r in latest}, model, interval_s, stop_after_s,
                          as_json)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow quietly
        _run(url, work)


async def _follow(engine: AsyncEngine, cursor: int, shown: set[str], model: str | None, interval_s: float,
                  stop_after_s: float | None, as_json: bool) -> None:
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    while deadline is None or time.monotonic() < deadline:
        await asyncio.sleep(interval_s)
        rows = await request_log.rows_after(engine, cursor, model=model)
        if rows:
            cursor = rows[-1][0]
            # rows written between the first query and the cursor were already shown
            fresh = [record for _, record in rows if record.request_id not in shown]
            shown.clear()
            _emit(fresh, as_json, header=False)


@logs_app.command("show")
def show(
    request_id: str = typer.Argument(..., help="The gateway's request id (the x-request-id response header), "
                                     "or the client's own x-request-id (x-client-request-id)."),
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Show one request in full: every field, an inter-token latency summary, and the stored bodies."""
    found = _run(resolve_url(db, config), lambda engine: request_log.find(engine, request_id))
    if not found:
        _fail(f"no request with id {request_id!r}")
    record = found[0]
    if len(found) > 1:  # client ids are the callers' to choose, so several requests may carry one
        which = "that gateway id" if record.request_id == request_id else "the newest"
        others = ", ".join(other.request_id for other in found[1:])
        err_console.print(Text(f"several requests carry id {request_id!r}; showing {record.request_id} ({which}); "
                               f"the others: {others}"))
    if as_json:
        print(json.dumps(to_json(record), ensure_ascii=False, indent=2))
        return
    fields = Table(show_header=False, box=None, pad_edge=False)
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    for name, value in to_json(record).items():
        if name in ("itl_s", "request_body", "response_body", "annotations"):
            continue
        fields.add_row(name, Text("-" if value is None else str(value)))
    fields.add_row("itl", itl_summary(record.itl_s))
    for key, value in sorted(record.annotations.items()):  # what the stages added, one row per key
        fields.add_row(key, Text(json.dumps(value, ensure_ascii=False)))
    console.print(fields)
    for title, body in (("request body", record.request_body), ("response body", record.response_body)):
        console.print(Text(f"\n{title}", style="bold"))
        console.print(Text(_pretty(body) if body is not None else "(not stored)"))


def itl_summary(itl_s: tuple[float, ...]) -> str:
    """`n=…, mean/p50/p90/p99/max` in milliseconds; `-` for a non-streamed request."""
    if not itl_s:
        return "-"
    ordered = sorted(itl_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000

    mean = statistics.fmean(itl_s) * 1000
    return (f"n={len(itl_s)}  mean {mean:.2f}  p50 {pct(0.5):.2f}  p90 {pct(0.9):.2f}  "
            f"p99 {pct(0.99):.2f}  max {ordered[-1] * 1000:.2f} ms")


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    except ValueError:
        return body


__all__ = ["DEFAULT_DB", "itl_summary", "logs_app", "resolve_url", "to_json"]
