"""`sluice cost …`: cost reports over the request log, and the price each configured target gets."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.catalog import CatalogError, builtin_catalog, load_prices
from sluice.cli.common import console, err_console, load_or_exit, read_store
from sluice.cli.logs import resolve_url
from sluice.config import SluiceConfig
from sluice.cost import (
    GROUPINGS,
    CostReport,
    CostRow,
    GPUHours,
    GPUPriced,
    GPUUsage,
    PriceBook,
    cost_report,
    gpu_hours,
    gpu_usage,
    parse_moment,
    plot_cost_report,
)
from sluice.cost import format_usd as _usd
from sluice.errors import ConfigError

cost_app = typer.Typer(help="Cost: reports over the request log, and which price each target gets.",
                       no_args_is_help=True)

FORMATS = ("table", "csv", "json")
CSV_FIELDS = ("group", "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
              "cost_per_1k_requests_usd", "share", "unpriced_requests", "estimated_requests")


@cost_app.command("report", short_help="Cost by model, key, team, target or day (table, CSV, JSON, PNG).")
def report(
    by: str = typer.Option("model", "--by", "-b", help=f"Group by: {', '.join(GROUPINGS)} (day: UTC days)."),
    since: str | None = typer.Option(None, "--since", "-s", help="Window start: a duration ago (30m, 12h, 7d, 2w) "
                                     "or a date/time like 2026-11-01 (UTC unless it names a zone). Default: all."),
    until: str | None = typer.Option(None, "--until", "-u", help="Window end (exclusive), same forms. Default: now."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a PNG chart here (bars by group; --by day: "
                                     "stacked by model)."),
    db: str | None = typer.Option(None, "--db", help="Store URL, e.g. sqlite:///sluice.db or "
                                  "postgresql://user@host/db (default: sqlite:///sluice.db)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Gateway config file: its store.url is used "
                                       "(over --db), and its GPU backends get a utilisation and idle-cost table."),
) -> None:
    """Requests, tokens (in / out / cached), cost, cost per 1k requests and share of the total, per model, key,
    team, target or day, summed in the database. With --config: GPU utilisation and idle cost of self-hosted
    backends (idle GPU time is a cost no request was charged for)."""
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        _fail(f"--format: expected one of {', '.join(FORMATS)}, not {fmt!r}", code=2)
    if by not in GROUPINGS:
        _fail(f"--by: expected one of {', '.join(GROUPINGS)}, not {by!r}", code=2)
    try:
        since_ts = parse_moment(since, option="--since") if since else None
        until_ts = parse_moment(until, option="--until") if until else None
    except ValueError as error:
        _fail(str(error), code=2)
    settings = load_or_exit(config) if config is not None else None
    hours = _gpu_hours(settings) if settings is not None else {}
    url = resolve_url(db, config)

    async def work(engine: AsyncEngine) -> tuple[CostReport, list[GPUUsage]]:
        found = await cost_report(engine, by, since=since_ts, until=until_ts)
        return found, await gpu_usage(engine, hours, since=since_ts, until=until_ts)

    result, gpus = _read(url, work)
    if fmt == "json":
        print(json.dumps({**result.to_json(), "gpu": [usage.to_json() for usage in gpus]}, indent=2))
    elif fmt == "csv":
        _write_csv(result)
    else:
        _render(result, gpus)
    if plot is not None:
        written = plot_cost_report(result, plot)
        (err_console if fmt != "table" else console).print(f"chart written to {escape(str(written))}")


@cost_app.command("prices", short_help="The API price catalog, or the price each configured target gets.")
def prices(
    config: Path | None = typer.Option(None, "--config", "-c", help="Gateway config: show the price each of its "
                                       "targets gets, and from where."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The API price catalog (USD per 1M tokens, source, date, how it was verified); with --config, the price
    every configured target resolves to (config override, GPU-hours, catalog, or unpriced)."""
    if config is None:
        try:
            entries = load_prices().entries
        except CatalogError as error:
            _fail(str(error))
        rows = [{"provider": e.provider, "model": e.model, "input_usd_per_1m": e.price.input_usd_per_1m,
                 "cached_input_usd_per_1m": e.price.cached_input, "cache_write_usd_per_1m": e.price.cache_write,
                 "output_usd_per_1m": e.price.output_usd_per_1m, "verified": e.verified, "as_of": e.as_of,
                 "source": e.source} for e in entries]
        titles = ("provider", "model", "input", "cached", "cache write", "output", "verified", "as of")
    else:
        settings = load_or_exit(config)
        try:
            book = PriceBook(settings.pricing, settings.backends)
        except ConfigError as error:
            _fail(str(error), code=2)
        rows = [_target_price(book, name, target.backend, target.model or name)
                for name, model in settings.models.items() for target in model.targets]
        titles = ("model", "backend", "upstream model", "input", "cached", "output", "GPU $/h", "from")
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold", caption="token prices in USD per 1M tokens")
    for title in titles:
        table.add_column(title, justify="right" if title in ("input", "cached", "cache write", "output",
                                                             "GPU $/h") else "left", overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(value)) for key, value in row.items() if key != "source"))
    console.print(table)


def _target_price(book: PriceBook, model: str, backend: str, upstream: str) -> dict[str, Any]:
    price = book.price_for(backend, upstream)
    row: dict[str, Any] = {"model": model, "backend": backend, "upstream_model": upstream, "input_usd_per_1m": None,
                           "cached_input_usd_per_1m": None, "output_usd_per_1m": None, "gpu_usd_per_hour": None,
                           "from": "unpriced"}
    if isinstance(price, GPUPriced):
        row.update(gpu_usd_per_hour=price.meter.usd_per_hour, **{"from": price.origin})
    elif price is not None:
        row.update(input_usd_per_1m=price.price.input_usd_per_1m, cached_input_usd_per_1m=price.price.cached_input,
                   output_usd_per_1m=price.price.output_usd_per_1m, **{"from": price.origin})
    return row


def _gpu_hours(settings: SluiceConfig) -> dict[str, GPUHours]:
    """The backends whose requests are priced by GPU-hours: declared GPUs, and no `pricing.targets` price
    winning over them for every configured target on the backend (those requests pay a token price; adding
    the GPUs' idle time to them would bill twice)."""
    catalog = builtin_catalog()
    try:
        found = {name: gpu_hours(name, backend, catalog) for name, backend in settings.backends.items()}
        book = PriceBook(settings.pricing, settings.backends, gpus=catalog)
    except ConfigError as error:
        _fail(str(error), code=2)
    targets: dict[str, set[str]] = {}
    for name, model in settings.models.items():
        for target in (*model.targets, *model.rollout.candidate, *model.rollout.shadow):
            targets.setdefault(target.backend, set()).add(target.model or name)
    return {name: hours for name, hours in found.items() if hours is not None and (
        not targets.get(name) or any(isinstance(book.price_for(name, upstream), GPUPriced)
                                     for upstream in targets[name]))}


def _render(result: CostReport, gpus: list[GPUUsage]) -> None:
    window = _window_text(result.since, result.until)
    if not result.rows:
        console.print(f"no routed requests {window}")
    else:
        console.print(_cost_table(result, window))
    if gpus:
        console.print(_gpu_table(gpus))
        idle = sum(usage.idle_cost_usd for usage in gpus)
        console.print(f"idle GPU time cost {_usd(idle)} that no request was charged for; requests plus idle: "
                      f"{_usd(result.total.cost_usd + idle)}")


def _cost_table(result: CostReport, window: str) -> Table:
    show_unpriced = result.total.unpriced_requests > 0
    caption = f"{window}; cost sums priced requests only" if show_unpriced else window
    if result.total.estimated_requests:
        caption += f"; {result.total.estimated_requests:,} requests have tokenizer-estimated counts"
    table = Table(header_style="bold", box=None, caption=caption, show_footer=True, footer_style="bold")
    table.add_column(result.by, footer="total", overflow="fold")
    total = result.total
    for title, value in (("requests", f"{total.requests:,}"), ("tokens in", f"{total.prompt_tokens:,}"),
                         ("tokens out", f"{total.completion_tokens:,}"), ("cached", f"{total.cached_tokens:,}"),
                         ("cost", _usd(total.cost_usd)), ("per 1k req", _usd(total.cost_per_1k_requests_usd)),
                         ("share", "100%" if total.cost_usd > 0 else "-")):
        table.add_column(title, footer=value, justify="right", no_wrap=True)
    if show_unpriced:
        table.add_column("unpriced", footer=f"{total.unpriced_requests:,}", justify="right", style="yellow")
    for row in result.rows:
        cells = [escape(row.group), f"{row.requests:,}", f"{row.prompt_tokens:,}", f"{row.completion_tokens:,}",
                 f"{row.cached_tokens:,}", _usd(row.cost_usd), _usd(row.cost_per_1k_requests_usd),
                 f"{result.share(row):.1%}"]
        if show_unpriced:
            cells.append(f"{row.unpriced_requests:,}" if row.unpriced_requests else "")
        table.add_row(*cells)
    return table


def _gpu_table(gpus: list[GPUUsage]) -> Table:
    table = Table(title="GPU utilisation (self-hosted backends)", header_style="bold", box=None,
                  caption="busy: at least one request in progress; idle cost = GPU cost − busy cost")
    for title in ("backend", "GPUs", "$/h", "hours", "busy h", "util", "GPU cost", "busy cost", "charged",
                  "idle cost"):
        table.add_column(title, justify="left" if title in ("backend", "GPUs") else "right", no_wrap=True)
    for usage in gpus:
        table.add_row(escape(usage.backend), f"{usage.gpu_count}× {usage.gpu or 'gpu'}", f"{usage.usd_per_hour:.2f}",
                      f"{usage.window_s / 3600:,.2f}", f"{usage.busy_s / 3600:,.2f}", f"{usage.utilisation:.1%}",
                      _usd(usage.gpu_cost_usd), _usd(usage.busy_cost_usd), _usd(usage.attributed_usd),
                      _usd(usage.idle_cost_usd))
    return table


def _write_csv(result: CostReport) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in result.rows:
        writer.writerow(_csv_values(result, row))


def _csv_values(result: CostReport, row: CostRow) -> list[Any]:
    return [row.group, row.requests, row.prompt_tokens, row.completion_tokens, row.cached_tokens,
            f"{row.cost_usd:.10f}", f"{row.cost_per_1k_requests_usd:.10f}", f"{result.share(row):.6f}",
            row.unpriced_requests, row.estimated_requests]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _window_text(since: float | None, until: float | None) -> str:
    def stamp(moment: float) -> str:
        return f"{dt.datetime.fromtimestamp(moment, dt.UTC):%Y-%m-%d %H:%M} UTC"

    if since is None and until is None:
        return "all time"
    if until is None:
        return f"since {stamp(since)}"  # type: ignore[arg-type]
    return f"{'from ' + stamp(since) if since is not None else 'up to'} {'to ' if since is not None else ''}" \
           f"{stamp(until)}"


def _read(url: str, work: Any) -> Any:
    return read_store(url, work)


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


__all__ = ["cost_app"]
