"""A prompt version as a document — the admin API's body and a folder's `vN.yaml` share this one shape — and a
prompt's bundle: every version and where its labels point, what export writes and import reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluice.prompts.refs import check_label, check_name
from sluice.prompts.versions import Message, PromptError, PromptSpec, Variable, validation_detail


class VariableDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    default: Any = None  # none (or null): the variable must be given


class MessageDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str
    content: str


class PromptDocument(BaseModel):
    """One version: a text `template` or chat `messages` (the kind follows from which, or says it), the variables
    it declares (a name, or {name, description, default}), its config, semver and commit fields."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "chat"] | None = None
    template: str | None = None
    messages: list[MessageDocument] | None = None
    variables: list[str | VariableDocument] = []
    config: dict[str, Any] = {}
    semver: str | None = None
    message: str | None = Field(None, max_length=4096)  # the commit message
    author: str | None = Field(None, max_length=255)

    def spec(self) -> PromptSpec:
        kind = self.kind or ("chat" if self.messages is not None else "text")
        variables = tuple(Variable(name=variable) if isinstance(variable, str)
                          else Variable(name=variable.name, description=variable.description, default=variable.default)
                          for variable in self.variables)
        messages = tuple(Message(role=message.role, content=message.content) for message in self.messages or ())
        return PromptSpec(kind=kind, template=self.template, messages=messages, variables=variables,
                          config={key: value for key, value in self.config.items() if value is not None},  # unset
                          semver=self.semver, message=self.message, author=self.author)


class _NumberedDocument(PromptDocument):
    version: int = Field(gt=0)


class _BundleDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    versions: list[_NumberedDocument] = []
    labels: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class PromptBundle:
    """A prompt's versions by number, oldest first, and where its labels point (never `latest`)."""

    name: str
    versions: tuple[tuple[int, PromptSpec], ...]
    labels: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [{"version": number, **spec.document()}
                                                for number, spec in self.versions], "labels": self.labels}

    @classmethod
    def from_json(cls, data: object, where: str = "prompts") -> PromptBundle:
        """A bundle from the admin API's JSON; PromptError naming the field at fault."""
        try:
            found = _BundleDocument.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc, where) from None
        name = check_name(found.name)
        return cls(name=name, versions=tuple((document.version, document.spec()) for document in found.versions),
                   labels=checked_labels(found.labels, f"{where}.{name}.labels"))


def parse_document(data: object, where: str) -> PromptSpec:
    """A version from a mapping (a file's YAML, an API body); PromptError naming `where` and the field at fault."""
    try:
        return PromptDocument.model_validate(data).spec()
    except ValidationError as exc:
        raise _invalid(exc, where) from None


def checked_labels(labels: object, where: str) -> dict[str, int]:
    """`{label: version}` with every label a settable one (`latest` is never stored) and every version a number."""
    if not isinstance(labels, dict):
        raise PromptError(f"{where}: a mapping of label to version number (e.g. production: 3)", param="labels",
                          code="invalid_labels")
    checked: dict[str, int] = {}
    for label, version in labels.items():
        try:
            check_label(label)
        except PromptError as error:
            raise PromptError(f"{where}: {error}", param="labels", code="invalid_labels") from None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise PromptError(f"{where}: {label}: a version number (e.g. {label}: 3), not {version!r}",
                              param="labels", code="invalid_labels")
        checked[label] = version
    return checked


def _invalid(exc: ValidationError, where: str) -> PromptError:
    path, message = validation_detail(exc)
    return PromptError(f"{where}: {path or 'document'}: {message}", param=path or None, code="invalid_prompt")


__all__ = ["MessageDocument", "PromptBundle", "PromptDocument", "VariableDocument", "checked_labels",
           "parse_document"]
