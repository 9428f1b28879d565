"""The `prompt` stage: a request that names a registered prompt gets it rendered into its messages before routing.

A chat request names one in its body, `"prompt": {"name": "support", "label": "production", "variables": {...}}`
(or `"version": 3`, `"semver": "1.2.0"`; no selector: the latest), or in headers, `x-sluice-prompt:
support@production` with `x-sluice-prompt-variables: {"customer": "Ada"}` (JSON), which `/v1/completions` takes
too. The rendered messages come first, then the request's own (a conversation so far); a text prompt is one user
message, or a completion's `prompt`. The version's config fills the generation parameters the request leaves
unset (the request's own win). The version used is in the `x-sluice-prompt` response header and the
`prompt.name` / `prompt.version` / `prompt.label` annotations of the request log; the response cache, later in
the chain, keys on the rendered request, so a label move never serves the answer of the old version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from sluice.backends import ChatCompletionRequest, CompletionRequest
from sluice.errors import ErrorClass, InvalidRequest, SluiceError
from sluice.prompts.refs import check_label, check_name, check_semver, parse_ref
from sluice.prompts.resolver import PromptResolver
from sluice.prompts.versions import PromptError, PromptNotFound, TemplateError

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Next, Reply

BODY_FIELD = "prompt"
REF_HEADER = "x-sluice-prompt"
VARIABLES_HEADER = "x-sluice-prompt-variables"
MAX_VARIABLES_HEADER_BYTES = 16 * 1024
# config keys applied to a request that leaves them unset (`model` is what the prompt was written for: the
# request's model chooses what serves it)
_APPLIED = ("temperature", "max_tokens", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
            "response_format")


class PromptUnknown(SluiceError):
    """The request names a prompt, version or label the registry does not have: a 404 naming what exists."""

    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


@dataclass(frozen=True, slots=True)
class PromptUse:
    """What a request asks for: a reference (`name`, `name@3`, `name@production`, `name@1.2.0`) and variables."""

    ref: str
    variables: Mapping[str, Any]


def prompt_use_of(body: Mapping[str, Any] | Any, headers: Mapping[str, str]) -> PromptUse | None:
    """The prompt a request names (its body's `prompt` object, else its headers), checked; None when none.
    InvalidRequest naming the field for a malformed one."""
    field = body.get(BODY_FIELD) if isinstance(body, Mapping) else None
    if field is not None:
        return _from_body(field)
    header = headers.get(REF_HEADER)
    if header is None:
        return None
    raw = headers.get(VARIABLES_HEADER)
    variables: Any = {}
    if raw is not None:
        if len(raw) > MAX_VARIABLES_HEADER_BYTES:
            raise InvalidRequest(f"{VARIABLES_HEADER}: at most {MAX_VARIABLES_HEADER_BYTES:,} bytes; send large "
                                 f"variables in the body's `{BODY_FIELD}` object", param=VARIABLES_HEADER)
        try:
            variables = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest(f"{VARIABLES_HEADER}: not JSON; send an object, e.g. {{\"customer\": \"Ada\"}}",
                                 param=VARIABLES_HEADER) from None
    return PromptUse(_checked_ref(header.strip(), REF_HEADER), _variables(variables, VARIABLES_HEADER))


def _from_body(field: Any) -> PromptUse:
    if not isinstance(field, Mapping):
        raise InvalidRequest(f"`{BODY_FIELD}` must be an object: {{\"name\": ..., \"label\": ..., \"variables\": "
                             "{...}}", param=BODY_FIELD)
    unknown = sorted(set(field) - {"name", "label", "version", "semver", "variables"})
    if unknown:
        raise InvalidRequest(f"{BODY_FIELD}.{unknown[0]}: unknown; a prompt takes name, label | version | semver, "
                             "variables", param=f"{BODY_FIELD}.{unknown[0]}")
    name = field.get("name")
    selectors = [key for key in ("label", "version", "semver") if field.get(key) is not None]
    if len(selectors) > 1:
        raise InvalidRequest(f"{BODY_FIELD}: give one of label, version, semver, not {' and '.join(selectors)}",
                             param=f"{BODY_FIELD}.{selectors[1]}")
    try:
        check_name(name)
        ref = name
        if selectors == ["label"]:
            ref = f"{name}@{check_label(field['label'])}" if field["label"] != "latest" else name
        elif selectors == ["version"]:
            version = field["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise InvalidRequest(f"{BODY_FIELD}.version: a version number from 1, not {version!r}",
                                     param=f"{BODY_FIELD}.version")
            ref = f"{name}@{version}"
        elif selectors == ["semver"]:
            ref = f"{name}@{check_semver(field['semver'])}"
    except PromptError as error:
        raise InvalidRequest(f"{BODY_FIELD}: {error}", param=f"{BODY_FIELD}.{error.param or 'name'}") from None
    return PromptUse(ref, _variables(field.get("variables", {}), f"{BODY_FIELD}.variables"))


def _checked_ref(ref: str, where: str) -> str:
    try:
        parse_ref(ref)
    except PromptError as error:
        raise InvalidRequest(f"{where}: {error}", param=where) from None
    return ref


def _variables(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}: an object of variable names to values", param=where)
    return value


class PromptStage:
    """First in a generation chain: resolves and renders a named prompt into the request (see the module)."""

    name = "prompt"

    def __init__(self, resolver: PromptResolver) -> None:
        self.resolver = resolver

    async def __call__(self, call: Call, next: Next) -> Reply:
        request = call.request
        extra = request.model_extra
        use = prompt_use_of(extra, call.ctx.headers) if extra or REF_HEADER in call.ctx.headers else None
        if use is not None:
            call.request = await self._rendered(call, use)
        return await next(call)

    async def _rendered(self, call: Call, use: PromptUse) -> Any:
        try:
            version, rendered = await self.resolver.render(use.ref, use.variables)
        except PromptNotFound as error:
            raise PromptUnknown(str(error), param=BODY_FIELD, code="prompt_not_found") from None
        except TemplateError as error:
            variables = ", ".join(error.variables)
            raise InvalidRequest(str(error), param=f"{BODY_FIELD}.variables" + (f".{variables}" if variables else ""),
                                 code=error.code) from None
        except PromptError as error:
            raise InvalidRequest(str(error), param=BODY_FIELD, code=error.code) from None
        request, ctx = call.request, call.ctx
        ctx.annotate("prompt.name", version.name)
        ctx.annotate("prompt.version", version.version)
        label = use.ref.partition("@")[2]
        if label and not label[0].isdigit():
            ctx.annotate("prompt.label", label)
        call.set_header(REF_HEADER, f"{version.name}@{version.version}")
        # the body as sent is what OpenAI-compatible upstreams get (ctx.raw_body): render into it, then re-read it
        raw = dict(ctx.raw_body) if ctx.raw_body is not None else request.model_dump(exclude_none=True)
        if isinstance(request, ChatCompletionRequest):  # a completion's `prompt` is its own text, not the reference
            raw.pop(BODY_FIELD, None)
        for key in _APPLIED:
            if rendered.config.get(key) is not None and raw.get(key) is None:
                raw[key] = rendered.config[key]
        if isinstance(request, ChatCompletionRequest):
            messages = ([{"role": "user", "content": rendered.text}] if rendered.kind == "text" else
                        [{"role": message.role, "content": message.content} for message in rendered.messages])
            raw["messages"] = [*messages, *(raw.get("messages") or ())]
            updated: Any = _validated(ChatCompletionRequest, raw, use)
        elif isinstance(request, CompletionRequest):
            if rendered.kind != "text":
                raise InvalidRequest(f"{use.ref} is a chat prompt: use it on /v1/chat/completions", param=REF_HEADER,
                                     code="prompt_kind_mismatch")
            raw.pop("response_format", None)
            raw["prompt"] = rendered.text
            updated = _validated(CompletionRequest, raw, use)
        else:
            return request
        ctx.request, ctx.raw_body = updated, raw
        return updated


def _validated(model: type[ChatCompletionRequest] | type[CompletionRequest], raw: dict[str, Any],
               use: PromptUse) -> Any:
    """The rendered body as a request; a 400 naming the prompt if its config and the request do not fit."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{use.ref} rendered into a request that is not valid: {where}: {first['msg']}",
                             param=where or BODY_FIELD, code="invalid_rendered_prompt") from None


__all__ = ["BODY_FIELD", "REF_HEADER", "VARIABLES_HEADER", "PromptStage", "PromptUnknown", "PromptUse",
           "prompt_use_of"]
