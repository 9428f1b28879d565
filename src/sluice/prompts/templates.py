"""Prompt templates: Jinja2 in a sandbox, checked when a version is created, compiled once per content and
rendered with exactly the variables the version declares.

Checked at creation: syntax (the error names the line), variables a template uses but does not declare (named),
attribute access to private names (`__class__`: the sandbox would refuse it at render anyway). A variable that is
declared but used by no template is a warning, not an error: a template can stop using a variable while callers
still send it. At render a missing or an undeclared variable is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sluice.prompts.config import check_config
from sluice.prompts.refs import check_semver
from sluice.prompts.versions import ROLES, Message, PromptError, PromptKind, PromptSpec, TemplateError

MAX_TEMPLATE_CHARS = 256 * 1024  # one template or message
MAX_MESSAGES = 256
MAX_VARIABLES = 256
MAX_DESCRIPTION_CHARS = 1024
COMPILED_MAX = 4096  # compiled versions kept (by content hash); the oldest is dropped first

# Immutable: a template may not change a list or dict it is given (`{{ items.append(1) }}`), which would change
# a variable's default for every later render
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                                     auto_reload=False)
_GLOBALS = frozenset(_ENV.globals)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered version: the text (kind text) or the messages (kind chat), and the config to apply."""

    kind: PromptKind
    text: str | None
    messages: tuple[Message, ...]
    config: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"kind": self.kind, "text": self.text, "config": dict(self.config)}
        return {"kind": self.kind, "messages": [asdict(message) for message in self.messages],
                "config": dict(self.config)}


class CompiledPrompt:
    """A checked version's templates, compiled; `render` is what runs per request."""

    __slots__ = ("_parts", "config", "declared", "defaults", "kind", "required", "unused")

    def __init__(self, spec: PromptSpec, parts: tuple[tuple[str | None, jinja2.Template], ...],
                 used: frozenset[str]) -> None:
        self.kind = spec.kind
        self._parts = parts  # (role, template); role None for a text prompt
        self.config = spec.config
        self.declared = frozenset(variable.name for variable in spec.variables)
        self.required = frozenset(variable.name for variable in spec.variables if variable.required)
        self.defaults = {variable.name: variable.default for variable in spec.variables if not variable.required}
        self.unused = tuple(variable.name for variable in spec.variables if variable.name not in used)

    def warnings(self) -> list[str]:
        return [f"variable {name!r} is declared but no template uses it" for name in self.unused]

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        """The text or messages with `variables` filled in; TemplateError naming any variable that is missing or
        not declared, or what the template did that the sandbox refused."""
        names = variables.keys()
        if not names <= self.declared:
            extra = sorted(names - self.declared)
            declared = ", ".join(sorted(self.declared)) or "none"
            raise TemplateError(f"unknown variable{_s(extra)} {_quoted(extra)}: this version declares {declared}",
                                variables=tuple(extra), param=f"variables.{extra[0]}", code="unknown_variables")
        if not names >= self.required:
            missing = sorted(self.required - names)
            raise TemplateError(f"missing variable{_s(missing)} {_quoted(missing)}", variables=tuple(missing),
                                param=f"variables.{missing[0]}", code="missing_variables")
        context = {**self.defaults, **variables} if self.defaults else dict(variables)
        if self.kind == "text":
            return Rendered("text", _render(self._parts[0][1], context, "template"), (), self.config)
        messages = tuple(Message(role, _render(template, context, f"messages[{index}]"))  # type: ignore[arg-type]
                         for index, (role, template) in enumerate(self._parts))
        return Rendered("chat", None, messages, self.config)


_COMPILED: dict[str, CompiledPrompt] = {}


def compiled(spec: PromptSpec, content_hash: str | None = None) -> CompiledPrompt:
    """The version compiled, once per content (`content_hash`, computed when not given); TemplateError if bad."""
    key = content_hash or spec.content_hash()
    found = _COMPILED.get(key)
    if found is None:
        found = check_spec(spec)
        if len(_COMPILED) >= COMPILED_MAX:
            del _COMPILED[next(iter(_COMPILED))]  # the oldest: a version in use is compiled again at once
        _COMPILED[key] = found
    return found


def render(spec: PromptSpec, variables: Mapping[str, Any], content_hash: str | None = None) -> Rendered:
    return compiled(spec, content_hash).render(variables)


def check_spec(spec: PromptSpec) -> CompiledPrompt:
    """Everything about a version that can be wrong, checked: its shape, semver, config, variables and templates.
    PromptError (TemplateError for templates) names the field or variable at fault."""
    sources = _sources(spec)
    if spec.semver is not None:
        check_semver(spec.semver)
    check_config(spec.config)
    declared = _check_variables(spec)
    parts: list[tuple[str | None, jinja2.Template]] = []
    used: set[str] = set()
    for where, role, source in sources:
        tree = _parse(source, where)
        _check_safe(tree, where)
        names = meta.find_undeclared_variables(tree) - _GLOBALS
        undeclared = sorted(names - declared)
        if undeclared:
            raise TemplateError(f"{where} uses undeclared variable{_s(undeclared)} {_quoted(undeclared)}: declare "
                                f"{'them' if len(undeclared) > 1 else 'it'} in variables", variables=tuple(undeclared),
                                param=f"variables.{undeclared[0]}", code="undeclared_variables")
        used |= names
        parts.append((role, _ENV.from_string(tree)))
    return CompiledPrompt(spec, tuple(parts), frozenset(used))


def _sources(spec: PromptSpec) -> list[tuple[str, str | None, str]]:
    """(where, role, template source) of each template in the version, after checking the version's shape."""
    if spec.kind == "text":
        if not isinstance(spec.template, str) or spec.messages:
            raise PromptError("a text prompt has a template (a string) and no messages", param="template",
                              code="invalid_prompt")
        _check_size(spec.template, "template")
        return [("template", None, spec.template)]
    if spec.kind != "chat":
        raise PromptError(f"kind: text or chat, not {spec.kind!r}", param="kind", code="invalid_prompt")
    if spec.template is not None or not spec.messages:
        raise PromptError("a chat prompt has messages ([{role, content}, ...]) and no template", param="messages",
                          code="invalid_prompt")
    if len(spec.messages) > MAX_MESSAGES:
        raise PromptError(f"messages: at most {MAX_MESSAGES}", param="messages", code="invalid_prompt")
    sources = []
    for index, message in enumerate(spec.messages):
        where = f"messages[{index}]"
        if message.role not in ROLES:
            raise PromptError(f"{where}.role: one of {', '.join(ROLES)}, not {message.role!r}",
                              param=f"messages.{index}.role", code="invalid_prompt")
        if not isinstance(message.content, str):
            raise PromptError(f"{where}.content: a string (a template)", param=f"messages.{index}.content",
                              code="invalid_prompt")
        _check_size(message.content, f"{where}.content")
        sources.append((where, message.role, message.content))
    return sources


def _check_size(source: str, where: str) -> None:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise PromptError(f"{where}: at most {MAX_TEMPLATE_CHARS:,} characters", param=where, code="too_large")


def _check_variables(spec: PromptSpec) -> frozenset[str]:
    if len(spec.variables) > MAX_VARIABLES:
        raise PromptError(f"variables: at most {MAX_VARIABLES}", param="variables", code="invalid_prompt")
    seen: set[str] = set()
    for variable in spec.variables:
        name = variable.name
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise TemplateError(f"bad variable name {name!r}: letters, digits and '_', not starting with a digit or "
                                "'_' (e.g. customer_name)", variables=(str(name),), param="variables",
                                code="invalid_variable")
        if name in seen:
            raise TemplateError(f"variable {name!r} is declared twice", variables=(name,), param="variables",
                                code="invalid_variable")
        if variable.description is not None and len(variable.description) > MAX_DESCRIPTION_CHARS:
            raise PromptError(f"variable {name!r}: its description is at most {MAX_DESCRIPTION_CHARS} characters",
                              param="variables", code="invalid_variable")
        seen.add(name)
    return frozenset(seen)


def _parse(source: str, where: str) -> nodes.Template:
    try:
        return _ENV.parse(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{where} line {error.lineno}: {error.message}", param=where,
                            code="template_syntax") from None


def _check_safe(tree: nodes.Template, where: str) -> None:
    """No private attribute (`x.__class__`, `x['_y']`, `x|attr('__y')`): the usual way out of a sandbox."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args and isinstance(
                node.args[0], nodes.Const):
            name = node.args[0].value
        else:
            continue
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateError(f"{where} line {node.lineno}: reads the private attribute {name!r}, which templates "
                                "may not", param=where, code="unsafe_template")


def _render(template: jinja2.Template, context: dict[str, Any], where: str) -> str:
    try:
        return template.render(context)
    except jinja2.exceptions.SecurityError as error:
        raise TemplateError(f"{where}: the sandbox refused it: {error}", param=where, code="unsafe_template") from None
    except jinja2.UndefinedError as error:
        raise TemplateError(f"{where}: {error.message}", param=where, code="undefined_value") from None
    except Exception as error:  # a template's own expression failed (1 / 0, a filter on the wrong type)
        raise TemplateError(f"{where}: rendering failed: {type(error).__name__}: {error}", param=where,
                            code="render_failed") from None


def _s(names: list[str]) -> str:
    return "s" if len(names) > 1 else ""


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


__all__ = ["COMPILED_MAX", "CompiledPrompt", "Rendered", "check_spec", "compiled", "render"]
