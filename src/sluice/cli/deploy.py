"""`sluice deploy …`: read and change a running gateway's deployments through its admin API.

Other rollout commands join this group with `deploy_app.command(NAME)(function)` (see the end of the file).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sluice.cli.common import console, err_console
from sluice.cli.deploy_view import (
    diff_text,
    overview_table,
    print_change,
    print_detail,
    print_verdict,
    print_verdict_line,
    time_text,
)

DEFAULT_URL = "http://127.0.0.1:4000"
deploy_app = typer.Typer(help="Deployments and rollouts: weights, blue-green switches, progressive canaries with "
                         "automated analysis, promote, rollback, the audit trail.", no_args_is_help=True)

URL = typer.Option(DEFAULT_URL, "--url", envvar="SLUICE_URL", help="The gateway's base URL.")
KEY = typer.Option(None, "--key", "--master-key", envvar="SLUICE_MASTER_KEY", help="The gateway's master key.",
                   show_default=False)
ACTOR = typer.Option(None, "--actor", help="Who makes the change, for the audit trail (default: $USER).",
                     show_default=False)
REASON = typer.Option(None, "--reason", "-r", help="Why, for the audit trail.")
JSON = typer.Option(False, "--json", help="Print the API's JSON answer instead of tables.")
MODEL = typer.Argument(..., help="The public model name.")


class AdminClient:
    """The gateway's admin API over HTTP (stdlib only); failures print the gateway's error and exit 1."""

    def __init__(self, url: str, key: str | None, actor: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"content-type": "application/json",
                        "x-sluice-actor": actor or os.environ.get("USER") or "cli"}
        if key:
            self.headers["authorization"] = f"Bearer {key}"

    def get(self, path: str, **params: object) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._send("GET", path + (f"?{query}" if query else ""), None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._send("POST", path, {k: v for k, v in body.items() if v is not None})

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=self.headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read())["error"]
                message = detail["message"] + (f" (param: {detail['param']})" if detail.get("param") else "")
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {error.code} {error.reason}"
            fail(f"{method} {path}: {message}")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            fail(f"cannot reach the gateway at {self.url}: {reason} (set --url or SLUICE_URL)")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _path(model: str, action: str = "") -> str:
    return "/admin/deployments/" + urllib.parse.quote(model, safe="/") + (f"/{action}" if action else "")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


@deploy_app.command("status")
def status(model: str | None = typer.Argument(None, help="One model in detail; all of them when left out."),
           url: str = URL, key: str | None = KEY, as_json: bool = JSON) -> None:
    """Deployments in force: targets, candidate weight, version, and each model's canary and its verdicts."""
    client = AdminClient(url, key)
    if model is None:
        listing = client.get("/admin/deployments")
        if as_json:
            return _print_json(listing)
        console.print(overview_table(listing["data"]))
        for name, problem in listing["problems"].items():
            console.print(f"[yellow]{escape(name)}:[/] {escape(problem)}")
        return None
    view = client.get(_path(model))
    if as_json:
        return _print_json(view)
    print_detail(view)
    return None


@deploy_app.command("set-weight")
def set_weight(model: str = MODEL, weight: float = typer.Argument(..., help="Percent of traffic to the candidate."),
               reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL, key: str | None = KEY,
               as_json: bool = JSON) -> None:
    """Send WEIGHT % of MODEL's traffic to its candidate (sticky: callers already there stay)."""
    _change(url, key, actor, model, "set-weight", {"weight": weight, "reason": reason}, as_json)


@deploy_app.command("set-candidate")
def set_candidate(model: str = MODEL,
                  candidate: list[str] | None = typer.Option(None, "--candidate", "-t", help="BACKEND or "
                                                             "BACKEND:UPSTREAM_MODEL, optionally @WEIGHT; "
                                                             "repeatable: the candidate's replicas."),
                  version: str | None = typer.Option(None, "--version", help="Or a registry version "
                                                     "(support@3, support@staging): served where the registry "
                                                     "says (sluice models show)."),
                  strategy: str | None = typer.Option(None, "--strategy", help="canary or blue_green (default: "
                                                      "keep)."),
                  weight: float = typer.Option(0.0, "--weight", help="Its share of traffic, percent."),
                  reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL, key: str | None = KEY,
                  as_json: bool = JSON) -> None:
    """Put a new candidate version in place (at 0 % unless --weight), e.g. the next green of a blue-green: its
    replicas (--candidate), or a registry version (--version)."""
    if bool(candidate) == (version is not None):
        raise typer.BadParameter("give --candidate (repeatable) or --version, not both", param_hint="--candidate")
    body: dict[str, Any] = {"candidate": [_target(spec) for spec in candidate or ()], "strategy": strategy,
                            "weight": weight, "reason": reason}
    if version is not None:
        body["version"] = version
    _change(url, key, actor, model, "set-candidate", body, as_json)


@deploy_app.command("set-shadow")
def set_shadow(model: str = MODEL,
               shadow: list[str] | None = typer.Option(None, "--shadow", "-t", help="BACKEND or "
                                                       "BACKEND:UPSTREAM_MODEL, optionally @WEIGHT; repeatable: "
                                                       "the shadow's replicas."),
               off: bool = typer.Option(False, "--off", help="Stop mirroring MODEL."),
               sample_rate: float | None = typer.Option(None, "--rate", min=0.0, max=1.0,
                                                        help="Share of requests mirrored, 0-1 (default: keep)."),
               max_concurrency: int | None = typer.Option(None, "--max-concurrency", min=1,
                                                          help="Shadow calls in flight; more are skipped "
                                                          "(default: keep)."),
               reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL, key: str | None = KEY,
               as_json: bool = JSON) -> None:
    """Mirror MODEL's requests to a shadow target in the background (answers compared, never returned)."""
    if off == bool(shadow):
        fail("give --shadow TARGET (repeatable) to mirror, or --off to stop", code=2)
    body = {"shadow": [] if off else [_target(spec, "--shadow") for spec in shadow or ()],
            "sample_rate": sample_rate, "max_concurrency": max_concurrency, "reason": reason}
    _change(url, key, actor, model, "set-shadow", body, as_json)


@deploy_app.command("switch")
def switch(model: str = MODEL,
           to: str | None = typer.Option(None, "--to", help="stable or candidate (default: the side without "
                                         "traffic)."),
           reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL, key: str | None = KEY,
           as_json: bool = JSON) -> None:
    """Blue-green: move all of MODEL's traffic to the other side at once (run again to switch back)."""
    _change(url, key, actor, model, "switch", {"to": to, "reason": reason}, as_json)


@deploy_app.command("start-canary")
def start_canary(
    model: str = MODEL,
    candidate: list[str] | None = typer.Option(None, "--candidate", "-t", help="BACKEND or BACKEND:UPSTREAM_MODEL, "
                                               "optionally @WEIGHT; repeatable (default: the candidate in place)."),
    steps: str | None = typer.Option(None, "--steps", help="Weights in percent, e.g. 5,25,50,100 (default: "
                                     "rollout.canary.steps)."),
    interval_s: float | None = typer.Option(None, "--interval", help="Seconds per step (analysis window)."),
    min_requests: int | None = typer.Option(None, "--min-requests", help="Per side and window; fewer: "
                                            "inconclusive."),
    max_extensions: int | None = typer.Option(None, "--max-extensions", help="Inconclusive windows a step may "
                                              "add."),
    on_exhausted: str | None = typer.Option(None, "--on-exhausted", help="rollback, advance or hold."),
    threshold: list[str] | None = typer.Option(None, "--threshold", help="NAME=VALUE, repeatable, e.g. "
                                               "max_ttft_p99_increase=0.5 or alpha=0.01."),
    webhook: list[str] | None = typer.Option(None, "--webhook", help="URL for canary events, repeatable."),
    wait: bool = typer.Option(False, "--wait", help="Follow the canary until it ends; exit 0 if promoted, 1 "
                              "otherwise."),
    reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL, key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """Start a progressive canary on MODEL.

    Steps through the weights, analyses each window against stable, rolls back on a failed verdict.

    Promotes after the last step. Settings left unset come from rollout.canary in the gateway's config."""
    body: dict[str, Any] = {
        "candidate": [_target(spec) for spec in candidate] if candidate else None,
        "steps": _steps(steps) if steps else None, "interval_s": interval_s, "min_requests": min_requests,
        "max_extensions": max_extensions, "on_exhausted": on_exhausted,
        "thresholds": dict(_threshold(item) for item in threshold) if threshold else None,
        "webhooks": webhook or None, "reason": reason}
    client = AdminClient(url, key, actor)
    result = client.post(_path(model, "start-canary"), body)
    if not wait:
        return _print_json(result) if as_json else print_change(result)
    if not as_json:
        print_change(result)
    run = _follow(client, model, result["canary"]["id"], as_json)
    raise typer.Exit(0 if run["state"] == "promoted" else 1)


@deploy_app.command("promote")
def promote(model: str = MODEL, reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL,
            key: str | None = KEY, as_json: bool = JSON) -> None:
    """Make MODEL's candidate its stable version (ends a canary in progress)."""
    _change(url, key, actor, model, "promote", {"reason": reason}, as_json)


@deploy_app.command("rollback")
def rollback(model: str = MODEL, reason: str | None = REASON, actor: str | None = ACTOR, url: str = URL,
             key: str | None = KEY, as_json: bool = JSON) -> None:
    """Send all of MODEL's traffic back to stable (candidate kept at 0 %; ends a canary in progress)."""
    _change(url, key, actor, model, "rollback", {"reason": reason}, as_json)


@deploy_app.command("history")
def history(model: str = MODEL, limit: int = typer.Option(20, "-n", "--limit", min=1, max=1000,
                                                          help="How many changes, newest first."),
            url: str = URL, key: str | None = KEY, as_json: bool = JSON) -> None:
    """The audit trail of MODEL: every change, who made it, when, why, and what it changed."""
    events = AdminClient(url, key).get(_path(model, "history"), limit=limit)
    if as_json:
        return _print_json(events)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("time", "version", "action", "actor", "change", "reason"):
        table.add_column(column, overflow="fold")
    for event in events["data"]:
        table.add_row(time_text(event["created_at"]), str(event["version"]), event["action"], Text(event["actor"]),
                      Text(diff_text(event["before"], event["after"])), Text(event["reason"] or "-"))
    console.print(table if events["data"] else f"no changes recorded for {escape(model)}")
    return None


@deploy_app.command("analyze")
def analyze(model: str = MODEL, window_s: int = typer.Option(300, "--window", min=1, help="Seconds back from now."),
            url: str = URL, key: str | None = KEY, as_json: bool = JSON) -> None:
    """Compare MODEL's candidate with stable over the last --window seconds now (nothing is stored or changed)."""
    result = AdminClient(url, key).get(_path(model, "analysis"), window_s=window_s)
    if as_json:
        return _print_json(result)
    print_verdict(result)
    return None


def _change(url: str, key: str | None, actor: str | None, model: str, action: str, body: dict[str, Any],
            as_json: bool) -> None:
    result = AdminClient(url, key, actor).post(_path(model, action), body)
    _print_json(result) if as_json else print_change(result)


def _follow(client: AdminClient, model: str, run_id: int, as_json: bool) -> dict[str, Any]:
    shown: set[int] = set()
    while True:
        run = client.get(_path(model))["canary"]
        if run is None or run["id"] != run_id:
            fail(f"canary {run_id} of {model} is no longer the latest run")
        for verdict in reversed(run["verdicts"]):
            if verdict["id"] not in shown:
                shown.add(verdict["id"])
                if as_json:
                    print(json.dumps(verdict), flush=True)
                else:
                    print_verdict_line(verdict)
        if run["state"] != "running":
            if not as_json:
                console.print(f"canary {run_id}: [bold]{run['state']}[/]")
            return run
        time.sleep(1.0)


def _target(spec: str, option: str = "--candidate") -> dict[str, Any]:
    """BACKEND[:MODEL][@WEIGHT] -> {backend, model, weight}."""
    rest, _, weight = spec.partition("@")
    backend, _, upstream = rest.partition(":")
    if not backend:
        fail(f"{option} {spec!r}: expected BACKEND[:UPSTREAM_MODEL][@WEIGHT]", code=2)
    target: dict[str, Any] = {"backend": backend}
    if upstream:
        target["model"] = upstream
    if weight:
        try:
            target["weight"] = float(weight)
        except ValueError:
            fail(f"{option} {spec!r}: weight {weight!r} is not a number", code=2)
    return target


def _steps(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--steps {text!r}: expected comma-separated percentages, e.g. 5,25,50,100", code=2)


def _threshold(item: str) -> tuple[str, float]:
    name, sep, value = item.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        fail(f"--threshold {item!r}: expected NAME=NUMBER, e.g. max_ttft_p99_increase=0.5", code=2)


# Commands from other rollout modules join the group here.
from sluice.cli.deploy_shadow import shadow_report  # noqa: E402

deploy_app.command("shadow-report")(shadow_report)

__all__ = ["AdminClient", "deploy_app"]
