"""`sluice prompts …`: the prompt registry on a running gateway — create versions, list, show, diff, move and roll
back labels, read their history, render, and sync a git folder with import / export (docs/prompts.md). Talks to
`/admin/prompts` like `sluice models`; every error exits 2 with what to type."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table
from rich.text import Text

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
from sluice.cli.keys import DEFAULT_URL, AsJson, MasterKey, Url
from sluice.cli.prompts_folder import export_folder, import_folder
from sluice.prompts import PromptError, PromptRef, parse_ref

prompts_app = typer.Typer(help="The prompt registry: versioned templates with variables and config, labels.",
                          no_args_is_help=True)
Actor = Annotated[str | None, typer.Option(help="Who does it (kept in the label history).")]
Reason = Annotated[str | None, typer.Option(help="Why (kept in the label history).")]


@prompts_app.command("create")
def create(name: Annotated[str, typer.Argument(help="The prompt's name, e.g. support-reply.")],
           template: Annotated[str | None, typer.Option(help="A text prompt's template (Jinja2: {{ name }}).")] = None,
           file: Annotated[Path | None, typer.Option("--file", help="Read the text template from a file.")] = None,
           messages_file: Annotated[Path | None, typer.Option(help="A chat prompt: a YAML list of {role, content} "
                                                              "(content is a template).")] = None,
           var: Annotated[list[str] | None, typer.Option("--var", help="A variable the templates use: NAME, or "
                                                         "NAME=DEFAULT; repeat.")] = None,
           config: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (read as JSON when it parses): model, "
                                                            "temperature, max_tokens, response_format ...; repeat.")]
           = None,
           semver: Annotated[str | None, typer.Option(help="A semantic version for it, e.g. 1.2.0.")] = None,
           message: Annotated[str | None, typer.Option(help="The commit message: what changed and why.")] = None,
           author: Annotated[str | None, typer.Option(help="Who wrote it.")] = None,
           label: Annotated[list[str] | None, typer.Option("--label", help="Point this label at it at once; "
                                                           "repeat.")] = None,
           url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Create a new version (numbered by the registry: 1, 2, 3…). Variables the templates use must be declared."""
    if sum(given is not None for given in (template, file, messages_file)) != 1:
        exit_with("give the prompt one way: --template TEXT, --file FILE (a text template) or --messages-file "
                  "FILE.yaml (a chat prompt)", code=2)
    body: dict[str, Any] = {"variables": [_variable(item) for item in var or ()],
                            "config": key_values(config, "--config"), "semver": semver, "message": message,
                            "author": author, "labels": label or []}
    if messages_file is not None:
        body["messages"] = _messages(messages_file)
    else:
        body["template"] = template if file is None else _read(file)
    result = admin_call("POST", url, f"/admin/prompts/{url_segment(name)}/versions", master_key, body, code=2)
    if as_json:
        print_json(result)
        return
    console.print(f"created [bold]{name}@{result['version']}[/]")
    for warning in result.get("warnings") or ():
        console.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    _show_version(result)


@prompts_app.command("list")
def list_prompts(url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Prompts: kind, how many versions, the latest, the labels."""
    result = admin_call("GET", url, "/admin/prompts", master_key, code=2)
    if as_json:
        print_json(result)
        return
    if not result["data"]:
        console.print("no prompts yet: sluice prompts create NAME --template TEXT (or sluice prompts import DIR)")
        return
    table = Table("prompt", "kind", "versions", "latest", "labels", "updated")
    for row in result["data"]:
        labels = ", ".join(f"{label} → {version}" for label, version in sorted(row["labels"].items()))
        latest = f"{row['latest']} ({row['latest_semver']})" if row.get("latest_semver") else str(row["latest"])
        table.add_row(row["name"], row["kind"], str(row["versions"]), latest, labels or "—",
                      utc_when(row["updated_at"]))
    console.print(table)


@prompts_app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME (its versions), or NAME@N, NAME@LABEL, NAME@SEMVER, "
                                            "NAME@latest (one version).")],
         url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """A prompt's versions, or one version in full."""
    parsed = _ref(ref)
    if "@" not in ref:
        result = admin_call("GET", url, f"/admin/prompts/{url_segment(parsed.name)}/versions", master_key, code=2)
        if as_json:
            print_json(result)
            return
        table = Table("version", "semver", "kind", "labels", "message", "author", "created", "hash")
        for row in result["data"]:
            table.add_row(str(row["version"]), or_dash(row["semver"]), row["kind"], ", ".join(row["labels"]) or "—",
                          Text(row["message"] or "—"), or_dash(row["author"]), utc_when(row["created_at"]),
                          row["content_hash"][:12])
        console.print(table)
        return
    result = admin_call("GET", url, f"/admin/prompts/{url_segment(parsed.name)}/versions/{url_segment(_tail(parsed))}",
                        master_key, code=2)
    if as_json:
        print_json(result)
        return
    _show_version(result)


@prompts_app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="NAME@N, NAME@LABEL or NAME@SEMVER.")],
         b: Annotated[str, typer.Argument(help="N, LABEL, SEMVER, or NAME@… of the same prompt.")],
         url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """What differs between two versions: the template line by line, then variables and config key by key."""
    first = _ref(a)
    second = _ref(b if "@" in b else f"{first.name}@{b}")
    if second.name != first.name or "@" not in a:
        exit_with(f"compare two versions of one prompt: sluice prompts diff {first.name}@1 {first.name}@2", code=2)
    query = f"a={url_segment(_tail(first))}&b={url_segment(_tail(second))}"
    result = admin_call("GET", url, f"/admin/prompts/{url_segment(first.name)}/diff?{query}", master_key, code=2)
    if as_json:
        print_json(result)
        return
    if not result["template_diff"] and not result["changes"]:
        console.print(f"{first.name}@{result['a']} and @{result['b']} are the same")
        return
    for line in result["template_diff"]:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" \
            if line.startswith("@@") else None
        console.print(Text(line.rstrip("\n"), style=style or ""), highlight=False)
    if result["changes"]:
        table = Table("field", f"{first.name}@{result['a']}", f"{first.name}@{result['b']}")
        for change in result["changes"]:
            table.add_row(change["field"], Text(json_cell(change["a"])), Text(json_cell(change["b"])))
        console.print(table)


@prompts_app.command("label")
def label(name: Annotated[str, typer.Argument(help="The prompt.")],
          label_name: Annotated[str, typer.Argument(metavar="LABEL", help="production, staging, or your own.")],
          version: Annotated[str | None, typer.Argument(help="Where it should point: a version number, a semver, "
                                                        "or another label (promote staging: … production staging).")]
          = None,
          delete: Annotated[bool, typer.Option("--delete", help="Remove the label instead.")] = False,
          reason: Reason = None, actor: Actor = None,
          url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Point a label at a version (atomically, audited), or remove it with --delete. `latest` is automatic."""
    if delete == (version is not None):
        exit_with(f"give a VERSION to point the label at (sluice prompts label {name} {label_name} 3), or --delete "
                  "to remove it", code=2)
    path = f"/admin/prompts/{url_segment(name)}/labels/{url_segment(label_name)}"
    body: dict[str, Any] = {"reason": reason, "actor": actor}
    if delete:
        result = admin_call("DELETE", url, path, master_key, body, code=2)
    else:
        assert version is not None
        target: int | str = int(version) if version.isascii() and version.isdigit() else version
        result = admin_call("PUT", url, path, master_key, {**body, "version": target}, code=2)
    _print_event(result, as_json)


@prompts_app.command("rollback")
def rollback(name: Annotated[str, typer.Argument(help="The prompt.")],
             label_name: Annotated[str, typer.Option("--label", help="The label to move back.")] = "production",
             reason: Reason = None, actor: Actor = None,
             url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Move a label back to where it pointed before its last move (audited as a rollback; again undoes it)."""
    result = admin_call("POST", url, f"/admin/prompts/{url_segment(name)}/labels/{url_segment(label_name)}/rollback",
                        master_key, {"reason": reason, "actor": actor}, code=2)
    _print_event(result, as_json)


@prompts_app.command("history")
def history(name: Annotated[str, typer.Argument(help="The prompt.")],
            label_name: Annotated[str | None, typer.Option("--label", help="Only this label.")] = None,
            url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Every label move, oldest first: when, which label, what kind of move, from and to, who, why."""
    query = f"?label={url_segment(label_name)}" if label_name else ""
    result = admin_call("GET", url, f"/admin/prompts/{url_segment(name)}/labels{query}", master_key, code=2)
    if as_json:
        print_json(result)
        return
    table = Table("when", "label", "action", "from", "to", "by", "reason")
    for event in result["data"]:
        table.add_row(utc_when(event["at"]), event["label"], event["action"], or_dash(event["from_version"]),
                      or_dash(event["to_version"]), or_dash(event["actor"]), Text(event["reason"] or ""))
    console.print(table if result["data"] else f"{name}: no label has moved yet")


@prompts_app.command("render")
def render(ref: Annotated[str, typer.Argument(help="NAME (the latest), NAME@N, NAME@LABEL or NAME@SEMVER.")],
           var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE (a string); repeat.")] = None,
           variables_file: Annotated[Path | None, typer.Option("--vars", help="Variables from a YAML or JSON "
                                                               "mapping (any values: lists, numbers).")] = None,
           url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Render a version with variables: the text or the messages, and the config it applies."""
    parsed = _ref(ref)
    variables = _variables_file(variables_file) if variables_file is not None else {}
    for item in var or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            exit_with(f"--var: expected NAME=VALUE, not {item!r}", code=2)
        variables[key] = value
    body = {"ref": None if parsed == PromptRef(parsed.name) else _tail(parsed), "variables": variables}
    result = admin_call("POST", url, f"/admin/prompts/{url_segment(parsed.name)}/render", master_key, body, code=2)
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]{result['name']}@{result['version']}[/]"
                  + (f" ({result['semver']})" if result.get("semver") else "")
                  + (f" config: {json_cell(result['config'])}" if result["config"] else ""), highlight=False)
    if result["kind"] == "text":
        typer.echo(result["text"])
        return
    for message in result["messages"]:
        console.print(f"[bold cyan]{message['role']}[/]")
        typer.echo(message["content"])


def _ref(text: str) -> PromptRef:
    try:
        return parse_ref(text)
    except PromptError as error:
        exit_with(str(error), code=2)


def _tail(ref: PromptRef) -> str:
    """What follows the `@`: a version number, a label, a semver, or `latest`."""
    return str(ref.version or ref.label or ref.semver or "latest")


def _variable(item: str) -> dict[str, Any]:
    name, sep, default = item.partition("=")
    return {"name": name, "default": default} if sep else {"name": name}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        exit_with(f"cannot read {path}: {error}", code=2)


def _messages(path: Path) -> Any:
    try:
        messages = yaml.safe_load(_read(path))
    except yaml.YAMLError as error:
        exit_with(f"{path}: not valid YAML: {error}", code=2)
    if not isinstance(messages, list):
        exit_with(f"{path}: expected a YAML list of messages, e.g.\n- role: system\n  content: You are …\n"
                  "- role: user\n  content: \"{{ question }}\"", code=2)
    return messages


def _variables_file(path: Path) -> dict[str, Any]:
    try:
        variables = yaml.safe_load(_read(path))  # JSON is YAML
    except yaml.YAMLError as error:
        exit_with(f"{path}: not valid YAML or JSON: {error}", code=2)
    if not isinstance(variables, dict):
        exit_with(f"{path}: expected a mapping of variable name to value", code=2)
    return variables


def _show_version(row: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("version", f"{row['name']}@{row['version']}")
    for name in ("semver", "kind", "message", "author"):
        if row.get(name) is not None:
            table.add_row(name, Text(str(row[name])))
    table.add_row("created", utc_when(row["created_at"]))
    table.add_row("labels", ", ".join(row.get("labels") or ()) or "—")
    table.add_row("hash", row["content_hash"])
    variables = [variable["name"] + ("" if "default" not in variable else f"={json_cell(variable['default'])}")
                 for variable in row["variables"]]
    table.add_row("variables", Text(", ".join(variables) or "—"))
    if row["config"]:
        table.add_row("config", Text(json_cell(row["config"])))
    console.print(table)
    if row["kind"] == "text":
        typer.echo(row["template"])
        return
    for message in row["messages"]:
        console.print(f"[bold cyan]{message['role']}[/]")
        typer.echo(message["content"])


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(event)
        return
    was, now = or_dash(event["from_version"]), event["to_version"]
    action = "" if event["action"] == "move" else f" ({event['action']})"
    console.print(f"{event['name']}@{event['label']}: {was} → {now if now is not None else 'removed'}{action}",
                  highlight=False)


prompts_app.command("import")(import_folder)
prompts_app.command("export")(export_folder)

__all__ = ["prompts_app"]
