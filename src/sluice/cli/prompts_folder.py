"""`sluice prompts import DIR` / `export DIR`: a git-friendly folder of prompts synced with a running gateway
(docs/prompts.md#keeping-prompts-in-git). The folder is read and written here; the gateway checks and applies it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import admin_call, console, exit_with, print_json, url_segment
from sluice.cli.keys import DEFAULT_URL, AsJson, MasterKey, Url
from sluice.prompts import PromptBundle, PromptError, read_folder, write_folder

Names = Annotated[list[str] | None, typer.Option("--name", help="Only this prompt; repeat.")]
Actor = Annotated[str | None, typer.Option(help="Who imports (kept in the label history).")]


def import_folder(folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder of prompts: DIR/NAME/v1.yaml, "
                                                         "DIR/NAME/labels.yaml.")],
                  names: Names = None, actor: Actor = None,
                  url: Url = DEFAULT_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """Create the versions the gateway lacks and move labels to match (audited as `import from DIR`). Checks every
    file first; a version file that differs from the version stored under its number is refused."""
    try:
        bundles = read_folder(folder, names or ())
    except PromptError as error:
        exit_with(str(error), code=2)
    result = admin_call("POST", url, "/admin/prompts/import", master_key,
                        {"source": str(folder), "prompts": [bundle.to_json() for bundle in bundles], "actor": actor},
                        code=2)
    if as_json:
        print_json(result)
        return
    moved = [f"{event['name']}@{event['label']} → {event['to_version']}" for event in result["moved"]]
    console.print(f"{len(bundles)} prompts from {folder}: created {', '.join(result['created']) or 'nothing'}; "
                  f"{result['unchanged']} versions unchanged; labels moved: {', '.join(moved) or 'none'}",
                  highlight=False)


def export_folder(folder: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write DIR/NAME/vN.yaml and "
                                                         "labels.yaml (created if needed).")],
                  names: Names = None,
                  url: Url = DEFAULT_URL, master_key: MasterKey = None) -> None:
    """Write every version and label (of every prompt, or of --name) as a git-friendly folder; files that are
    already right are not touched."""
    query = "&".join(f"name={url_segment(name)}" for name in names or ())
    result = admin_call("GET", url, f"/admin/prompts/export{'?' + query if query else ''}", master_key, code=2)
    try:
        written = write_folder(folder, [PromptBundle.from_json(bundle) for bundle in result["data"]])
    except (PromptError, OSError) as error:
        exit_with(f"cannot write {folder}: {error}", code=2)
    console.print(f"{len(result['data'])} prompts to {folder}: {len(written)} files written", highlight=False)


__all__ = ["export_folder", "import_folder"]
