"""The prompt registry: immutable numbered versions of each prompt (a text template or chat messages, Jinja2 in a
sandbox, with declared variables and a config), labels such as `production` that point at one and move with an
audit trail, and a git-friendly folder form (docs/prompts.md).

The repository over the store (`create_version`, `get_version` ...), bulk import/export and the request-time
resolver import SQLAlchemy, so their names load on first use: reading a `name@ref`, checking, rendering or
diffing a version, and reading or writing a folder need no database client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.prompts.config import CONFIG_KEYS, check_config
from sluice.prompts.diff import PromptDiff, diff
from sluice.prompts.document import PromptBundle, PromptDocument, parse_document
from sluice.prompts.folder import LABELS_FILE, read_folder, write_folder
from sluice.prompts.refs import PromptRef, check_label, check_name, check_semver, parse_ref, selector
from sluice.prompts.templates import CompiledPrompt, Rendered, check_spec, compiled, render
from sluice.prompts.versions import (
    ROLES,
    LabelEvent,
    Message,
    PromptConflict,
    PromptError,
    PromptNotFound,
    PromptSpec,
    PromptSummary,
    PromptVersion,
    TemplateError,
    Variable,
)

if TYPE_CHECKING:
    from sluice.prompts.resolver import CHANGES_CHANNEL, PromptResolver, announce_change
    from sluice.prompts.stage import PromptStage, PromptUnknown, PromptUse, prompt_use_of
    from sluice.prompts.store import (
        create_version,
        delete_label,
        get_version,
        label_history,
        labels_of,
        list_prompts,
        list_versions,
        rollback_label,
        set_label,
    )
    from sluice.prompts.sync import ImportReport, export_prompts, import_prompts

_ON_FIRST_USE = {  # name -> module: these import SQLAlchemy (the resolver also the shared state's Redis client)
    **dict.fromkeys(["CHANGES_CHANNEL", "PromptResolver", "announce_change"], "sluice.prompts.resolver"),
    **dict.fromkeys(["PromptStage", "PromptUnknown", "PromptUse", "prompt_use_of"], "sluice.prompts.stage"),
    **dict.fromkeys(["create_version", "delete_label", "get_version", "label_history", "labels_of", "list_prompts",
                     "list_versions", "rollback_label", "set_label"], "sluice.prompts.store"),
    **dict.fromkeys(["ImportReport", "export_prompts", "import_prompts"], "sluice.prompts.sync"),
}

__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "CHANGES_CHANNEL",
    "CONFIG_KEYS",
    "LABELS_FILE",
    "ROLES",
    "CompiledPrompt",
    "ImportReport",
    "LabelEvent",
    "Message",
    "PromptBundle",
    "PromptConflict",
    "PromptDiff",
    "PromptDocument",
    "PromptError",
    "PromptNotFound",
    "PromptRef",
    "PromptResolver",
    "PromptSpec",
    "PromptStage",
    "PromptSummary",
    "PromptUnknown",
    "PromptUse",
    "PromptVersion",
    "Rendered",
    "TemplateError",
    "Variable",
    "announce_change",
    "check_config",
    "check_label",
    "check_name",
    "check_semver",
    "check_spec",
    "compiled",
    "create_version",
    "delete_label",
    "diff",
    "export_prompts",
    "get_version",
    "import_prompts",
    "label_history",
    "labels_of",
    "list_prompts",
    "list_versions",
    "parse_document",
    "parse_ref",
    "prompt_use_of",
    "read_folder",
    "render",
    "rollback_label",
    "selector",
    "set_label",
    "write_folder",
]
