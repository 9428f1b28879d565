"""Helpers shared by CLI commands: the rich console, config loading with clear errors, admin API calls and the
way their answers are printed."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from sluice.config import SluiceConfig, load_config
from sluice.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def load_or_exit(path: Path | None) -> SluiceConfig:
    """The config, validated and start-up checked (`sluice.gateway.startup`), or exit 2 naming the bad key."""
    from sluice.gateway import check_startup  # here: only commands that read a config load the planner

    try:
        config = load_config(path)
        check_startup(config, str(path) if path is not None else "<config>")
        return config
    except ConfigError as exc:
        err_console.print(f"[red]config error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def read_store(url: str, work: Callable[[AsyncEngine], Awaitable[T]], *, what: str = "the request log",
               hint: str = "") -> T:
    """Open the store read-side, run `work(engine)`, and turn a missing file or an unreadable store into a
    clear error naming `what` (`hint` is added to the second)."""
    import asyncio

    from sqlalchemy.exc import DBAPIError

    from sluice.store import create_engine, display_url, sqlite_path

    try:
        path = sqlite_path(url)
    except ConfigError as error:
        exit_with(str(error), code=2)
    if path is not None and not Path(path).exists():
        exit_with(f"no {what.removeprefix('the ')} at {display_url(url)}: the file does not exist "
                  "(the gateway creates it on start; pass --db or --config)")

    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except DBAPIError as error:
        exit_with(f"cannot read {what} at {display_url(url)}: {error.orig or error}{hint}")


def admin_call(method: str, url: str, path: str, master_key: str | None, body: dict[str, Any] | None = None, *,
               code: int = 1) -> Any:
    """One call of the gateway's admin API: its JSON answer, or exit `code` with the error it gave (or why it
    could not be reached)."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if master_key:
        request.add_header("authorization", f"Bearer {master_key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = error.reason
        hint = " (pass --master-key or set SLUICE_MASTER_KEY)" if error.code == 401 else ""
        exit_with(f"{error.code}: {message}{hint}", code=code)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        exit_with(f"cannot reach the gateway at {url} ({reason}); is `sluice serve` running? (--url / SLUICE_URL)",
                  code=code)


def url_segment(text: str) -> str:
    """A name as one URL path segment (or query value): whatever it holds, the gateway judges it, not urllib."""
    return urllib.parse.quote(text, safe="")


def key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    """`KEY=VALUE` options as a dict, each value read as JSON when it parses (`0.2`, `[1, 2]`), else a string;
    exit 2 naming the option for an item without `=`."""
    pairs: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            exit_with(f"{option}: expected KEY=VALUE, not {item!r}", code=2)
        try:
            pairs[key] = json.loads(value)
        except ValueError:
            pairs[key] = value
    return pairs


def json_cell(value: Any) -> str:
    """A table cell: a string as it is, anything else as JSON, None as a dash."""
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def or_dash(value: object) -> str:
    return "—" if value is None else str(value)


def utc_when(at: float | None) -> str:
    """Unix seconds as `2026-12-10 14:03:00Z`; None as a dash."""
    if at is None:
        return "—"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def exit_with(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)
