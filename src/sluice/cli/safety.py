"""`sluice safety …`: what the gateway's guards found, from the request log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cli.common import console, err_console, read_store
from sluice.cli.logs import resolve_url
from sluice.cost import parse_moment
from sluice.safety import SafetyReport, safety_report

safety_app = typer.Typer(help="Safety guards: what they blocked, flagged, masked, or would have (monitor mode).",
                         no_args_is_help=True)


@safety_app.command("report", short_help="Guard verdicts by model, guard and category, with example request ids.")
def report(
    since: str = typer.Option("24h", "--since", "-s", help="Window start: a duration ago (30m, 12h, 7d, 2w) or a "
                              "date / time (UTC unless it names a zone)."),
    until: str | None = typer.Option(None, "--until", "-u", help="Window end (exclusive), same forms. Default: now."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this public model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: str | None = typer.Option(None, "--db", help="Store URL, e.g. sqlite:///sluice.db or "
                                  "postgresql+psycopg://… (default: the config's, else sqlite:///sluice.db)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Gateway config file: its store.url is used "
                                       "(takes precedence over --db)."),
) -> None:
    """Per model: each guard's verdicts (direction, category, action, mode), how many requests had one and what
    share of the model's requests that is, and up to three request ids to open with `sluice logs show`.
    Monitor-mode rows are what the guard would have done if it enforced."""
    try:
        since_ts = parse_moment(since, option="--since")
        until_ts = parse_moment(until, option="--until") if until else None
    except ValueError as error:
        _fail(str(error), code=2)
    url = resolve_url(db, config)

    async def work(engine: AsyncEngine) -> SafetyReport:
        return await safety_report(engine, since=since_ts, until=until_ts, model=model)

    result = read_store(url, work)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    _render(result)


def _render(result: SafetyReport) -> None:
    window = f"since {_stamp(result.since)}" if result.since is not None else "all time"
    if not result.rows:
        total = sum(result.requests.values())
        console.print(f"No guard verdicts {window} ({total:,} requests).")
        return
    table = Table(title=f"Guard verdicts {window}", header_style="bold", caption="monitor: would have done, never "
                  "did; share: of the model's requests in the window")
    for column in ("model", "guard", "dir", "category", "action", "mode"):
        table.add_column(column)
    table.add_column("requests", justify="right")
    table.add_column("share", justify="right")
    table.add_column("examples", overflow="fold")
    for row in result.rows:
        mode = f"[yellow]{row.mode}[/]" if row.would_act else row.mode
        action = f"[red]{row.action}[/]" if row.action == "block" and not row.would_act else row.action
        table.add_row(escape(row.model), escape(row.guard), row.direction, escape(row.category), action, mode,
                      f"{row.requests:,} / {row.model_requests:,}", f"{row.share:.2%}", " ".join(row.examples))
    console.print(table)


def _stamp(moment: float) -> str:
    return f"{dt.datetime.fromtimestamp(moment, dt.UTC):%Y-%m-%d %H:%M} UTC"


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


__all__ = ["safety_app"]
