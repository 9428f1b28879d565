"""`sluice safety …`: what the gateway's guards found, from the request log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cli.common import console, err_console, load_or_exit, read_store
from sluice.cli.logs import resolve_url
from sluice.config import SluiceConfig
from sluice.cost import parse_moment
from sluice.errors import ConfigError
from sluice.safety import SHIPPED, EvalResult, Example, GuardFailed, SafetyReport, safety_report, wilson

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


@safety_app.command("eval", short_help="Block and over-refusal rates of a model's guards on red-team and benign "
                   "sets.")
def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="The public model whose guards are evaluated."),
    sets: list[str] = typer.Option(list(SHIPPED), "--set", help="A shipped set (harmful, jailbreak, toxic, "
                                   "benign) or a JSONL file (`text`, `label`: harmful|benign); repeat for several."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Gateway config file (default: sluice.yaml if "
                                       "present)."),
    url: str | None = typer.Option(None, "--url", help="Evaluate through a running gateway instead (what clients "
                                   "see; Llama Guard included): e.g. http://127.0.0.1:8000. Passing prompts reach "
                                   "the model, one token each."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="SLUICE_API_KEY", help="Key for --url."),
    guards: str | None = typer.Option(None, "--guards", help="Direct mode: these guards (comma-separated names "
                                      "from safety.guards) instead of the model's."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many examples per set."),
    fail_if: list[str] = typer.Option([], "--fail-if", help="Exit 1 when this holds, e.g. 'unsafe_pass_rate > "
                                      "0.05' or 'over_refusal_rate > 2%'; repeat for several."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Runs each example through the guards as a prompt. Directly (default), every guard of the model sees every
    example, so each layer gets its own block rate (harmful sets) and over-refusal rate (benign set), with 95 %
    Wilson intervals and its latency. With --url, each example is a request to a running gateway: the overall
    rates, which guard blocked first, and the guards' time from the Server-Timing header."""
    from sluice.safety import evaluate_direct, evaluate_gateway, load_examples, parse_condition

    try:
        checks = [parse_condition(text) for text in fail_if]
        examples = _limited(load_examples(sets), limit)
    except ValueError as error:
        _fail(str(error), code=2)
    if not examples:
        _fail("the sets hold no examples", code=2)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bars:
        task = bars.add_task(f"{model}: {len(examples):,} examples", total=len(examples))

        def advance(done: int) -> None:
            bars.update(task, completed=done)

        try:
            if url is not None:
                result = asyncio.run(evaluate_gateway(url, model, examples, api_key=api_key, progress=advance))
            else:
                chosen = _direct_guards(load_or_exit(config), model, guards)
                result = asyncio.run(evaluate_direct(model, chosen, examples, progress=advance))
        except (GuardFailed, OSError) as error:
            _fail(str(error) or type(error).__name__)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _render_eval(result, len(examples))
    failed = [message for check in checks if (message := check(result)) is not None]
    for message in failed:
        err_console.print(f"[red]fail-if:[/] {escape(message)}")
    if failed:
        raise typer.Exit(1)


def _limited(examples: list[Example], limit: int | None) -> list[Example]:
    """At most `limit` examples from each source set (by id prefix), in order."""
    if limit is None:
        return examples
    kept: list[Example] = []
    counts: dict[str, int] = {}
    for example in examples:
        source = example.id.rsplit("-", 1)[0]
        if counts.get(source, 0) < limit:
            counts[source] = counts.get(source, 0) + 1
            kept.append(example)
    return kept


def _direct_guards(config: SluiceConfig, model: str, names: str | None) -> list[Any]:
    from sluice.safety import build_guard

    if names is not None:
        chosen = [name.strip() for name in names.split(",") if name.strip()]
    elif model in config.models:
        chosen = list(config.models[model].guards)
    else:
        _fail(f"unknown model {model!r}; configured: {', '.join(sorted(config.models)) or 'none'}", code=2)
    unknown = [name for name in chosen if name not in config.safety.guards]
    if unknown:
        _fail(f"unknown guard {unknown[0]!r}; defined: {', '.join(sorted(config.safety.guards)) or 'none'}", code=2)
    if not chosen:
        _fail(f"model {model!r} runs no guards; list them under models.{model}.guards, or pass --guards", code=2)
    try:
        return [build_guard(name, config.safety.guards[name]) for name in chosen]
    except ConfigError as error:
        _fail(str(error), code=2)


def _render_eval(result: EvalResult, examples: int) -> None:
    how = "each guard on every example" if result.mode == "direct" else "through the gateway: first guard to block"
    table = Table(title=f"Guards of {result.model} on {examples:,} examples ({how})", header_style="bold",
                  caption="block: harmful examples caught; over-refusal: benign examples refused; [..] 95 % Wilson "
                  "interval")
    for column in ("guard", "layer", "block rate", "over-refusal", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column in ("guard", "layer") else "right")
    for tally in [*result.layers, result.overall]:
        if tally.skipped:
            table.add_row(escape(tally.name), tally.layer, f"[dim]skipped: {escape(tally.skipped)}[/]", "", "", "", "")
            continue
        row = tally.to_json()
        table.add_row(f"[bold]{tally.name}[/]" if tally is result.overall else escape(tally.name), tally.layer,
                      _rate(tally.caught, tally.harmful), _rate(tally.refused, tally.benign),
                      _ms(row["p50_ms"]), _ms(row["p99_ms"]), str(tally.errors))
    console.print(table)
    kinds = result.overall.caught_by_kind
    if kinds:
        console.print("Blocked by kind: " + ", ".join(f"{kind} {c}/{n} ({c / n:.0%})"
                                                      for kind, (c, n) in sorted(kinds.items())))


def _rate(hits: int, total: int) -> str:
    if not total:
        return "-"
    low, high = wilson(hits, total)
    return f"{hits / total:.1%} [{low:.0%}–{high:.0%}] ({hits}/{total})"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 1 else f"{value:.1f}"


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
