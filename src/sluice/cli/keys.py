"""`sluice keys …`: create, list, show, update, rotate and revoke virtual keys on a running gateway.

Talks to the gateway's admin API (`/admin/keys`) with the master key, like any other client would, so it
works the same against one local gateway or a fleet behind a load balancer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from sluice.cli.common import admin_call, console, err_console

keys_app = typer.Typer(help="Virtual keys: per-caller secrets with model access, budgets and rate limits.",
                       no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:4000"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_CLEARABLE = {"owner": "owner", "team": "team", "models": "models", "budget-day": "budget_day_usd",
              "budget-month": "budget_month_usd", "budget-total": "budget_total_usd", "rpm": "rpm", "tpm": "tpm",
              "expires": "expires_at", "metadata": "metadata"}

Url = Annotated[str, typer.Option("--url", envvar="SLUICE_URL", help="The gateway's base URL.")]
MasterKey = Annotated[str | None, typer.Option("--master-key", envvar="SLUICE_MASTER_KEY",
                                               help="The gateway's master key (admin).", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")]
Team = Annotated[str | None, typer.Option("--team", help="Team the key belongs to (spend is reported by team).")]
Owner = Annotated[str | None, typer.Option("--owner", help="Who the key is for (a person, a service).")]
Models = Annotated[list[str] | None, typer.Option(
    "--model", "-m", help="A public model name or glob (`gpt-4o*`) the key may call; repeat for more. "
    "None given: every model.")]
BudgetDay = Annotated[float | None, typer.Option("--budget-day", min=0, help="USD per UTC day.")]
BudgetMonth = Annotated[float | None, typer.Option("--budget-month", min=0, help="USD per UTC month.")]
BudgetTotal = Annotated[float | None, typer.Option("--budget-total", min=0, help="USD over the key's life.")]
Rpm = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute (prompt + completion).")]
Expires = Annotated[str | None, typer.Option(
    "--expires", help="When the key stops working: a span from now (90d, 12h, 2w), an ISO-8601 time (UTC unless "
    "it says) or unix seconds.")]
Meta = Annotated[list[str] | None, typer.Option("--meta", help="Metadata as KEY=VALUE; repeat for more.")]


@keys_app.command("create")
def create(name: Annotated[str, typer.Argument(help="A name for the key (shown in lists and errors).")],
           team: Team = None, owner: Owner = None, model: Models = None, budget_day: BudgetDay = None,
           budget_month: BudgetMonth = None, budget_total: BudgetTotal = None, rpm: Rpm = None, tpm: Tpm = None,
           expires: Expires = None, meta: Meta = None, url: Url = DEFAULT_URL, master_key: MasterKey = None,
           as_json: AsJson = False) -> None:
    """Create a key. Its secret is printed once; the gateway keeps only a hash of it."""
    body = _settings(team=team, owner=owner, model=model, budget_day=budget_day, budget_month=budget_month,
                     budget_total=budget_total, rpm=rpm, tpm=tpm, expires=expires, meta=meta)
    result = _call("POST", url, "/admin/keys", master_key, {"name": name, **body})
    if as_json:
        _print_json(result)
        return
    _show_secret(result["secret"], "Store it now: it cannot be shown again.")
    _render_key(result["key"])


@keys_app.command("list")
def list_keys(team: Team = None, owner: Owner = None,
              include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
              url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """List keys (active and expired; `--all` adds revoked ones)."""
    query = {k: v for k, v in (("team", team), ("owner", owner)) if v is not None}
    if include_revoked:
        query["include_revoked"] = "true"
    result = _call("GET", url, "/admin/keys" + ("?" + urllib.parse.urlencode(query) if query else ""), master_key)
    if as_json:
        _print_json(result)
        return
    keys = result["data"]
    if not keys:
        console.print("no keys")
        return
    table = Table(title=f"{len(keys)} virtual key{'s' if len(keys) != 1 else ''}")
    for column in ("id", "name", "team", "owner", "models", "budget day/month/total", "rpm", "tpm", "status",
                   "last used"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for key in keys:
        table.add_row(key["id"], escape(key["name"]), escape(key["team"] or "-"), escape(key["owner"] or "-"),
                      escape(", ".join(key["models"]) or "all"), _budgets(key), _num(key["rpm"]),
                      _num(key["tpm"]), _status(key["status"]), _when(key["last_used_at"]))
    console.print(table)


@keys_app.command("show")
def show(key_id: Annotated[str, typer.Argument(help="The key's id (the hex part after sk-sluice-).")],
         url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """One key: its settings, and its spend today, this month and in total (from the request log)."""
    result = _call("GET", url, f"/admin/keys/{_id(key_id)}", master_key)
    if as_json:
        _print_json(result)
        return
    _render_key(result)
    spend = result["spend"]
    table = Table(title="spend (request log)", show_header=True)
    for column in ("today", "this month", "total", "requests", "held now"):
        table.add_column(column, justify="right")
    reserved = "?" if spend["reserved_usd"] is None else f"${spend['reserved_usd']:.4f}"
    table.add_row(*(f"${spend[k]:.4f}" for k in ("day_usd", "month_usd", "total_usd")), f"{spend['requests']:,}",
                  reserved)
    console.print(table)


@keys_app.command("update")
def update(key_id: Annotated[str, typer.Argument(help="The key's id.")],
           name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
           team: Team = None, owner: Owner = None, model: Models = None, budget_day: BudgetDay = None,
           budget_month: BudgetMonth = None, budget_total: BudgetTotal = None, rpm: Rpm = None, tpm: Tpm = None,
           expires: Expires = None, meta: Meta = None,
           clear: Annotated[list[str] | None, typer.Option(
               "--clear", help=f"Remove a setting (no limit / every model); repeat for more: "
               f"{', '.join(_CLEARABLE)}.")] = None,
           url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Change a key's settings; every gateway replica picks the change up within a second."""
    body = _settings(team=team, owner=owner, model=model, budget_day=budget_day, budget_month=budget_month,
                     budget_total=budget_total, rpm=rpm, tpm=tpm, expires=expires, meta=meta)
    if name is not None:
        body["name"] = name
    for field in clear or ():
        if field not in _CLEARABLE:
            _fail(f"--clear {field}: expected one of {', '.join(_CLEARABLE)}", code=2)
        if _CLEARABLE[field] in body:
            _fail(f"--clear {field} contradicts the value given for it", code=2)
        body[_CLEARABLE[field]] = None
    if not body:
        _fail("nothing to change: give a setting (see --help) or --clear FIELD", code=2)
    result = _call("PATCH", url, f"/admin/keys/{_id(key_id)}", master_key, body)
    if as_json:
        _print_json(result)
        return
    _render_key(result)


@keys_app.command("rotate")
def rotate(key_id: Annotated[str, typer.Argument(help="The key's id.")],
           grace: Annotated[str | None, typer.Option(
               "--grace", help="Keep the old secret working this long (10m, 1h, 7d) while clients switch.")] = None,
           url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """A new secret for the same key (same id, settings, spend); the old one stops working."""
    grace_s = _seconds(grace, "--grace") if grace is not None else 0.0
    result = _call("POST", url, f"/admin/keys/{_id(key_id)}/rotate", master_key, {"grace_s": grace_s})
    if as_json:
        _print_json(result)
        return
    until = result["key"]["rotation_grace_until"]
    _show_secret(result["secret"], "The old secret " + (f"works until {_when(until)}." if until else
                                                         "no longer works."))


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")],
           url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Revoke a key: every replica refuses it (401) within a second. It cannot be undone."""
    result = _call("POST", url, f"/admin/keys/{_id(key_id)}/revoke", master_key)
    if as_json:
        _print_json(result)
        return
    console.print(f"revoked [bold]{result['id']}[/] ({escape(result['name'])}) at {_when(result['revoked_at'])}")


def _settings(*, team: str | None, owner: str | None, model: list[str] | None, budget_day: float | None,
              budget_month: float | None, budget_total: float | None, rpm: int | None, tpm: int | None,
              expires: str | None, meta: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for field, value in (("team", team), ("owner", owner), ("budget_day_usd", budget_day),
                         ("budget_month_usd", budget_month), ("budget_total_usd", budget_total), ("rpm", rpm),
                         ("tpm", tpm)):
        if value is not None:
            body[field] = value
    if model:
        body["models"] = model
    if expires is not None:
        body["expires_at"] = _moment(expires)
    if meta:
        pairs = [item.split("=", 1) for item in meta]
        if any(len(pair) != 2 or not pair[0] for pair in pairs):
            _fail("--meta: expected KEY=VALUE", code=2)
        body["metadata"] = dict(pairs)
    return body


def _call(method: str, url: str, path: str, master_key: str | None, body: dict[str, Any] | None = None) -> Any:
    return admin_call(method, url, path, master_key, body)


def _seconds(text: str, option: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        _fail(f"{option}: expected a span like 30s, 10m, 12h, 7d or 2w, not {text!r}", code=2)
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _moment(text: str) -> float:
    """--expires: a span from now, an ISO-8601 time (UTC unless it says) or unix seconds."""
    if _DURATION.match(text):
        return time.time() + _seconds(text, "--expires")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        _fail(f"--expires: expected a span (90d), an ISO-8601 time or unix seconds, not {text!r}", code=2)
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _id(key_id: str) -> str:
    """Accept the id, or a whole secret pasted by mistake (only its id part is sent)."""
    if key_id.startswith("sk-sluice-"):
        return key_id.split("-")[2]
    return urllib.parse.quote(key_id, safe="")


def _render_key(key: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    rows = [("id", key["id"]), ("name", escape(key["name"])), ("status", _status(key["status"])),
            ("team", escape(key["team"] or "-")), ("owner", escape(key["owner"] or "-")),
            ("models", escape(", ".join(key["models"]) or "all")), ("budget day/month/total", _budgets(key)),
            ("rpm / tpm", f"{_num(key['rpm'])} / {_num(key['tpm'])}"), ("expires", _when(key["expires_at"])),
            ("created", _when(key["created_at"])), ("last used", _when(key["last_used_at"]))]
    if key.get("metadata"):
        rows.append(("metadata", escape(json.dumps(key["metadata"], ensure_ascii=False))))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


def _show_secret(secret: str, note: str) -> None:
    console.print(Panel(f"[bold green]{secret}[/]\n[yellow]{note}[/]", title="secret", expand=False))


def _budgets(key: dict[str, Any]) -> str:
    values = [key["budget_day_usd"], key["budget_month_usd"], key["budget_total_usd"]]
    return "-" if all(v is None for v in values) else " / ".join("-" if v is None else f"${v:g}" for v in values)


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _status(status: str) -> str:
    colour = {"active": "green", "revoked": "red", "expired": "yellow"}.get(status, "white")
    return f"[{colour}]{status}[/]"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return f"{dt.datetime.fromtimestamp(timestamp, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


__all__ = ["keys_app"]
