"""A git-friendly folder of prompts, one folder per prompt and one file per version:

    prompts/
      support-reply/
        v1.yaml        # kind, template or messages, variables, config, semver, message, author
        v2.yaml
        labels.yaml    # production: 2
                       # staging: 2

Multi-line templates are written as YAML literal blocks, so a change to a prompt reads as a change to its lines
in a git diff. Other files (a README.md) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sluice.prompts.document import PromptBundle, checked_labels, parse_document
from sluice.prompts.refs import check_name
from sluice.prompts.versions import PromptError, PromptSpec

LABELS_FILE = "labels.yaml"
_VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.yaml")


def read_folder(root: Path, names: Sequence[str] = ()) -> list[PromptBundle]:
    """Every prompt in `root` (or those in `names`), by name; PromptError naming the file at fault."""
    if not root.is_dir():
        raise PromptError(f"{root}: no such folder (it holds one folder per prompt: {root}/NAME/v1.yaml)",
                          param="dir", code="invalid_folder")
    folders = {folder.name: folder for folder in sorted(root.iterdir())
               if folder.is_dir() and not folder.name.startswith(".")}
    missing = sorted(set(names) - set(folders))
    if missing:
        raise PromptError(f"{root}: no folder for {', '.join(missing)} (found: {', '.join(folders) or 'none'})",
                          param="name", code="invalid_folder")
    return [_read_prompt(folder) for name, folder in folders.items() if not names or name in names]


def _read_prompt(folder: Path) -> PromptBundle:
    try:
        name = check_name(folder.name)
    except PromptError as error:
        raise PromptError(f"{folder}: the folder's name is the prompt's name: {error}", param="name",
                          code="invalid_folder") from None
    versions: list[tuple[int, PromptSpec]] = []
    labels: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        where = f"{name}/{path.name}"
        if path.name == LABELS_FILE:
            labels = checked_labels(_load(path, where) or {}, where)
        elif (matched := _VERSION_FILE.fullmatch(path.name)) is not None:
            versions.append((int(matched.group(1)), parse_document(_load(path, where), where)))
        elif path.suffix in (".yaml", ".yml"):
            raise PromptError(f"{where}: not a version file; name versions v1.yaml, v2.yaml ... and labels "
                              f"{LABELS_FILE}", param=where, code="invalid_folder")
    return PromptBundle(name, tuple(sorted(versions, key=lambda pair: pair[0])), labels)


def _load(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PromptError(f"{where}: not valid YAML: {error}", param=where, code="invalid_yaml") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PromptError(f"{where}: cannot read it: {error}", param=where, code="invalid_folder") from None


def write_folder(root: Path, bundles: Sequence[PromptBundle]) -> list[Path]:
    """Write each bundle under `root` (a file whose text is already right is not touched); the files written."""
    written = []
    for bundle in bundles:
        folder = root / bundle.name
        folder.mkdir(parents=True, exist_ok=True)
        texts = {f"v{number}.yaml": _dump(_file_document(spec)) for number, spec in bundle.versions}
        texts[LABELS_FILE] = _dump(dict(sorted(bundle.labels.items())))
        for file_name, text in texts.items():
            path = folder / file_name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


def _file_document(spec: PromptSpec) -> dict[str, Any]:
    """The version's document, a variable with only a name written as the bare name."""
    document = spec.document()
    if "variables" in document:
        document["variables"] = [variable["name"] if variable.keys() == {"name"} else variable
                                 for variable in document["variables"]]
    return document


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`), so templates read and diff line by line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def _dump(document: dict[str, Any]) -> str:
    if not document:
        return "{}\n"
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=1 << 20)


__all__ = ["LABELS_FILE", "read_folder", "write_folder"]
