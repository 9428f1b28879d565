"""`sluice models …`: the model registry on a running gateway — register versions, list, show, move aliases,
read their history, diff two versions (docs/registry.md). Talks to `/admin/models` like `sluice keys`."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sluice.cli.common import (
    admin_call,
    console,
    exit_with,
    json_cell,
    key_values,
    or_dash,
    print_json,
    url_segment,
    utc_when,
)
from sluice.cli.keys import AsJson, MasterKey, Url
from sluice.registry import RegistryError, file_sha256, inspect_adapter, parse_ref

models_app = typer.Typer(help="The model registry: versions of (base model, LoRA adapter, prompt, params), aliases.",
                         no_args_is_help=True)
DEFAULT_URL = "http://127.0.0.1:4000"
Pairs = Annotated[list[str] | None, typer.Option(help="KEY=VALUE (the value read as JSON when it parses); repeat.")]


@models_app.command("register")
def register(model: Annotated[str, typer.Argument(help="The registered model's name, e.g. customer-support.")],
             base: Annotated[str, typer.Option("--base", help="The base model id, e.g. "
                                               "meta-llama/Llama-3.1-8B-Instruct.")],
             revision: Annotated[str | None, typer.Option(help="The base model's revision or hash.")] = None,
             adapter: Annotated[str | None, typer.Option(help="A LoRA adapter: a local PEFT folder or .gguf file "
                                                         "(hashed, rank and alpha read), or a URI.")] = None,
             prompt: Annotated[str | None, typer.Option(help="The prompt version it uses, e.g. support@3.")] = None,
             param: Pairs = None,
             target: Annotated[list[str] | None, typer.Option(help="Where it is served: BACKEND:MODEL; repeat.")]
             = None,
             dataset: Annotated[Path | None, typer.Option(help="The training data file (its hash is kept).")] = None,
             parent: Annotated[int | None, typer.Option(help="The version it was trained from.")] = None,
             meta: Pairs = None,
             description: Annotated[str | None, typer.Option(help="A line about this version.")] = None,
             actor: Annotated[str | None, typer.Option(help="Who registers it (kept with the version).")] = None,
             url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Register a new version (numbered by the registry: 1, 2, 3…)."""
    body: dict[str, Any] = {"base_model": base, "base_revision": revision, "prompt": prompt,
                            "params": key_values(param, "--param"), "metadata": key_values(meta, "--meta"),
                            "targets": [_target(text) for text in target or ()], "description": description,
                            "actor": actor}
    if adapter is not None:
        body["adapter"] = _adapter(adapter, base)
    lineage: dict[str, Any] = {}
    if dataset is not None:
        lineage.update(dataset=str(dataset), dataset_sha256=_or_exit(lambda: file_sha256(dataset)))
    if parent is not None:
        lineage["parent_version"] = parent
    body["lineage"] = lineage
    result = admin_call("POST", url, f"/admin/models/{url_segment(model)}/versions", master_key, body)
    if as_json:
        print_json(result)
        return
    console.print(f"registered [bold]{model}@{result['version']}[/]")
    _renderor_dash(result)


@models_app.command("list")
def list_models(url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Registered models: how many versions, the latest, the aliases."""
    result = admin_call("GET", url, "/admin/models", master_key)
    if as_json:
        print_json(result)
        return
    table = Table("model", "versions", "latest", "aliases", "updated")
    for row in result["data"]:
        aliases = ", ".join(f"{alias} → {version}" for alias, version in sorted(row["aliases"].items()))
        table.add_row(row["model"], str(row["versions"]), str(row["latest"]), aliases or "—",
                      utc_when(row.get("updated_at")))
    console.print(table if result["data"] else "no registered models yet: sluice models register NAME --base ID")


@models_app.command("show")
def show(ref: Annotated[str, typer.Argument(help="MODEL (its versions), MODEL@N or MODEL@ALIAS (one version).")],
         url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """A model's versions, or one version in full."""
    model, version = _or_exit(lambda: parse_ref(ref))
    if version is None:
        result = admin_call("GET", url, f"/admin/models/{url_segment(model)}/versions", master_key)
        if as_json:
            print_json(result)
            return
        table = Table("version", "base", "adapter", "prompt", "aliases", "created", "by")
        for row in result["data"]:
            adapter = (row.get("adapter") or {}).get("uri") or "—"
            table.add_row(str(row["version"]), row["base_model"], adapter, row.get("prompt") or "—",
                          ", ".join(row.get("aliases") or ()) or "—", utc_when(row["created_at"]),
                          row.get("created_by") or "—")
        console.print(table)
        return
    result = admin_call("GET", url, f"/admin/models/{url_segment(model)}/versions/{url_segment(str(version))}",
                        master_key)
    runs = admin_call("GET", url, f"/admin/models/{url_segment(model)}/evals?version={result['version']}&limit=10",
                      master_key)["data"]
    if as_json:
        print_json({**result, "eval_runs": runs})
        return
    _renderor_dash(result)
    _render_eval_runs(runs)


@models_app.command("alias")
def alias(model: Annotated[str, typer.Argument(help="The registered model.")],
          name: Annotated[str, typer.Argument(help="The alias: production, staging, or your own.")],
          version: Annotated[int | None, typer.Argument(help="The version it should point at.")] = None,
          delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
          reason: Annotated[str | None, typer.Option(help="Why (kept in the alias history).")] = None,
          actor: Annotated[str | None, typer.Option(help="Who moves it (kept in the alias history).")] = None,
          force: Annotated[bool, typer.Option("--force", help="Move `production` to a version whose last quality "
                                              "gate failed (needs --reason; audited).")] = False,
          url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Point an alias at a version (atomically, audited), or remove it with --delete. Moving `production` to a
    version whose last quality gate failed is refused unless --force comes with a --reason."""
    if delete == (version is not None):
        exit_with("give a VERSION to point the alias at, or --delete to remove it", code=2)
    if force and not reason:
        exit_with("--force needs a --reason (it is kept in the alias history)", code=2)
    body = {"reason": reason, "actor": actor}
    if delete:
        result = admin_call("DELETE", url, f"/admin/models/{url_segment(model)}/aliases/{url_segment(name)}",
                            master_key, body)
    else:
        result = admin_call("PUT", url, f"/admin/models/{url_segment(model)}/aliases/{url_segment(name)}", master_key,
                            {**body, "version": version, "force": force})
    if as_json:
        print_json(result)
        return
    was = result.get("from_version")
    now = result.get("to_version")
    console.print(f"{model}@{name}: {was if was is not None else '—'} → {now if now is not None else 'removed'}")


@models_app.command("history")
def history(model: Annotated[str, typer.Argument(help="The registered model.")],
            name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
            url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Every alias move, oldest first: when, which alias, from and to, who, why."""
    query = f"?alias={url_segment(name)}" if name else ""
    result = admin_call("GET", url, f"/admin/models/{url_segment(model)}/aliases{query}", master_key)
    if as_json:
        print_json(result)
        return
    table = Table("when", "alias", "from", "to", "by", "reason")
    for event in result["data"]:
        table.add_row(utc_when(event["at"]), event["alias"], or_dash(event["from_version"]),
                      or_dash(event["to_version"]), event.get("actor") or "—", event.get("reason") or "")
    console.print(table)


@models_app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="MODEL@N or MODEL@ALIAS.")],
         b: Annotated[str, typer.Argument(help="N, ALIAS, or MODEL@N / MODEL@ALIAS of the same model.")],
         url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """What differs between two versions of a model, field by field."""
    model, first = _or_exit(lambda: parse_ref(a))
    other_model, second = _or_exit(lambda: parse_ref(b if "@" in b else f"{model}@{b}"))
    if other_model != model or first is None or second is None:
        exit_with(f"compare two versions of one model: sluice models diff {model}@1 {model}@2", code=2)
    query = f"a={url_segment(str(first))}&b={url_segment(str(second))}"
    result = admin_call("GET", url, f"/admin/models/{url_segment(model)}/diff?{query}", master_key)
    if as_json:
        print_json(result)
        return
    if not result["changes"]:
        console.print(f"{model}@{result['a']} and @{result['b']} are the same")
        return
    table = Table("field", f"{model}@{result['a']}", f"{model}@{result['b']}")
    for change in result["changes"]:
        table.add_row(change["field"], json_cell(change["a"]), json_cell(change["b"]))
    console.print(table)


@models_app.command("timeline")
def timeline(deployment: Annotated[str, typer.Argument(help="The public model (deployment), e.g. chat.")],
             at: Annotated[str | None, typer.Option(help="When: ISO-8601 (UTC unless it says), or unix seconds; "
                                                    "default now.")] = None,
             window: Annotated[float, typer.Option(help="Seconds of traffic around --at to measure shares in.")]
             = 300.0,
             url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """What served DEPLOYMENT at a moment: its sides, the registry version (base, adapter, prompt, params) behind
    each target, the share of traffic each side was given and the share it took."""
    moment = _moment(at) if at is not None else None
    query = urllib.parse.urlencode({key: value for key, value in (("at", moment), ("window_s", window))
                                    if value is not None})
    result = admin_call("GET", url, f"/admin/timeline/{url_segment(deployment)}?{query}", master_key)
    if as_json:
        print_json(result)
        return
    since = f"since {utc_when(result['since'])}" if result["since"] else "the config's deployment"
    change = result.get("change") or {}
    console.print(f"[bold]{deployment}[/] at {utc_when(result['at'])}: deployment version "
                  f"{result['deployment_version'] or '—'} ({since}"
                  + (f", {change['action']} by {change['actor']}" if change else "")
                  + (f": {change['reason']}" if change.get("reason") else "") + ")")
    table = Table("side", "given", f"took (±{result['window_s'] / 2:g} s)", "target", "registry version",
                  "base", "adapter", "prompt", "params")
    for side in result["sides"]:
        observed = side["observed_share"]
        for target in side["targets"]:
            version = target["version"] or {}
            table.add_row(side["role"], f"{side['configured_share']:g} %",
                          "—" if observed is None else f"{observed:.1f} %", f"{target['backend']}:{target['model']}",
                          f"{version['model']}@{version['version']}" if version else "unregistered",
                          version.get("base_model") or "—", (version.get("adapter") or {}).get("uri") or "—",
                          version.get("prompt") or "—", json_cell(version.get("params")) if version else "—")
    console.print(table)
    console.print(f"{result['requests']} routed requests in the window")


def _moment(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        exit_with(f"--at: expected ISO-8601 (2026-12-01T10:00) or unix seconds, not {text!r}", code=2)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _adapter(adapter: str, base: str) -> dict[str, Any]:
    """A local adapter is read (hash, rank, alpha, its base); anything else is kept as a URI."""
    path = Path(adapter).expanduser()
    if not path.exists():
        if "://" not in adapter:
            exit_with(f"--adapter: {adapter} does not exist (give a local folder / .gguf file, or a URI)", code=2)
        return {"uri": adapter}
    found = _or_exit(lambda: inspect_adapter(path))
    if found.base_model is not None and found.base_model != base:
        exit_with(f"--adapter: it was trained on {found.base_model!r}, not on --base {base!r}", code=2)
    return {"uri": found.uri, "sha256": found.sha256, "rank": found.rank, "alpha": found.alpha,
            "base_model": found.base_model}






def _target(text: str) -> dict[str, str]:
    backend, sep, model = text.partition(":")
    if not sep or not backend or not model:
        exit_with(f"--target: expected BACKEND:MODEL, not {text!r}", code=2)
    return {"backend": backend, "model": model}


def _or_exit(work: Any) -> Any:
    try:
        return work()
    except RegistryError as error:
        exit_with(str(error), code=2)


def _renderor_dash(row: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for name in ("model", "version", "base_model", "base_revision", "prompt", "description", "created_by"):
        if row.get(name) is not None:
            table.add_row(name, str(row[name]))
    table.add_row("created", utc_when(row["created_at"]))
    table.add_row("aliases", ", ".join(row.get("aliases") or ()) or "—")
    for name in ("adapter", "params", "targets", "lineage", "metadata"):
        if row.get(name):
            table.add_row(name, json_cell(row[name]))
    console.print(table)


def _render_eval_runs(runs: list[dict[str, Any]]) -> None:
    if not runs:
        console.print("eval runs: none recorded (sluice eval run SUITE --target MODEL@N --record)")
        return
    table = Table("eval run", "when", "suite", "accuracy", "errors", "gate", "target", title="eval runs, newest first")
    for run in runs:
        summary = run.get("summary") or {}
        accuracy = summary.get("accuracy") or {}
        rate = f"{accuracy['passed']}/{accuracy['total']}" if accuracy.get("total") else "—"
        gate = run.get("gate_status") or "—"
        colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}.get(gate)
        table.add_row(str(run["id"]), utc_when(run.get("created_at")), f"{run['suite']} ({run['suite_hash'][:8]})",
                      rate, str(summary.get("errors", "—")), f"[{colour}]{gate}[/]" if colour else gate,
                      run["target"])
    console.print(table)










__all__ = ["models_app"]
