"""A prompt's versions, labels and label moves as plain data, with the errors the prompt registry raises."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from pydantic import ValidationError

PromptKind = Literal["text", "chat"]
ROLES = ("system", "developer", "user", "assistant")
LabelAction = Literal["move", "delete", "rollback"]


class PromptError(ValueError):
    """A bad name, reference, template, config or variable; the message says what to type. `param` names the
    field or variable at fault, `code` is the machine-readable reason (`missing_variables` ...)."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_prompt") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class PromptNotFound(PromptError):
    """An unknown prompt, version, semver or label; the message names those that exist."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "not_found") -> None:
        super().__init__(message, param=param, code=code)


class PromptConflict(PromptError):
    """What the store holds already disagrees: a semver taken, an imported file that differs from its version."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "conflict") -> None:
        super().__init__(message, param=param, code=code)


class TemplateError(PromptError):
    """A template that does not parse, uses what it does not declare or may not touch, or a render given the
    wrong variables; `variables` names the variables at fault (none for a syntax error)."""

    def __init__(self, message: str, *, variables: tuple[str, ...] = (), param: str | None = None,
                 code: str = "template_error") -> None:
        super().__init__(message, param=param, code=code)
        self.variables = variables


def validation_detail(exc: ValidationError) -> tuple[str, str]:
    """The first pydantic error as (field path, what is wrong): `config.temperature`, `must be <= 2`."""
    first = exc.errors()[0]
    # pydantic names the union member it tried (`str`, `list[str]`, `VariableDocument`): a person needs the path
    path = ".".join(str(part) for part in first["loc"] if not (isinstance(part, str) and (
        part in {"str", "int", "float"} or part.startswith("list[") or part.endswith("Document"))))
    return path, "required" if first["type"] == "missing" else first["msg"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a chat prompt: a role and its content template."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Variable:
    """A declared template variable; one with no default (None) must be given at render."""

    name: str
    description: str | None = None
    default: Any = None

    @property
    def required(self) -> bool:
        return self.default is None

    def to_json(self) -> dict[str, Any]:
        """`{name}` plus the description and default when set: what the API and the folder files show."""
        found: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            found["description"] = self.description
        if self.default is not None:
            found["default"] = self.default
        return found


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """What a version is made of: `create_version` takes it, the store assigns the number."""

    kind: PromptKind
    template: str | None = None  # kind text
    messages: tuple[Message, ...] = ()  # kind chat
    variables: tuple[Variable, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # model, temperature, max_tokens, response_format ...
    semver: str | None = None
    message: str | None = None  # the commit message
    author: str | None = None

    def content_json(self) -> dict[str, Any]:
        """What the version renders and sends: the content hash covers exactly this."""
        return {"kind": self.kind, "template": self.template,
                "messages": [asdict(message) for message in self.messages] if self.kind == "chat" else None,
                "variables": [variable.to_json() for variable in self.variables], "config": self.config}

    def content_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.content_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    def document(self) -> dict[str, Any]:
        """The version as a document (the admin API's body, a folder's `vN.yaml`): content and commit fields,
        empty ones left out."""
        content = self.content_json()
        found: dict[str, Any] = {"semver": self.semver, "kind": self.kind, "message": self.message,
                                 "author": self.author, "variables": content["variables"],
                                 "config": self.config, "template": self.template, "messages": content["messages"]}
        return {key: value for key, value in found.items() if value not in (None, [], {})}


@dataclass(frozen=True, slots=True)
class PromptVersion:
    name: str
    version: int
    spec: PromptSpec
    content_hash: str
    created_at: float  # unix seconds
    labels: tuple[str, ...] = ()  # the labels pointing at it now, `latest` included when it is the newest

    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """Flat, for the admin API: name and number, the spec's fields, its hash, when, its labels."""
        spec = self.spec
        return {"name": self.name, "version": self.version, "semver": spec.semver, "kind": spec.kind,
                "template": spec.template,
                "messages": [asdict(message) for message in spec.messages] if spec.kind == "chat" else None,
                "variables": [variable.to_json() for variable in spec.variables], "config": spec.config,
                "message": spec.message, "author": spec.author, "content_hash": self.content_hash,
                "created_at": self.created_at, "labels": list(self.labels)}


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One move of a label: `from_version` None when it was created, `to_version` None when deleted."""

    name: str
    label: str
    action: LabelAction
    from_version: int | None
    to_version: int | None
    at: float  # unix seconds
    actor: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """One prompt in a listing: its kind now, how many versions, the latest, its labels, when it last changed."""

    name: str
    kind: PromptKind
    versions: int
    latest: int
    latest_semver: str | None
    labels: dict[str, int]
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


__all__ = [
    "ROLES",
    "LabelAction",
    "LabelEvent",
    "Message",
    "PromptConflict",
    "PromptError",
    "PromptKind",
    "PromptNotFound",
    "PromptSpec",
    "PromptSummary",
    "PromptVersion",
    "TemplateError",
    "Variable",
    "validation_detail",
]
