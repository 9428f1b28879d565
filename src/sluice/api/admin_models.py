"""Admin routes for the model registry (master key when one is set; docs/registry.md):

    GET    /admin/models                                  registered models: versions, latest, aliases
    POST   /admin/models/{model}/versions                 register a version -> 201 (numbered by the store)
    GET    /admin/models/{model}/versions                 its versions, oldest first
    GET    /admin/models/{model}/versions/{ref}           one version: a number, an alias, or `latest`
    PUT    /admin/models/{model}/aliases/{alias}          point an alias at a version {"version", "reason", "force"}
                                                          (`production`: 409 if the version's last gate failed)
    DELETE /admin/models/{model}/aliases/{alias}          remove an alias (audited too)
    GET    /admin/models/{model}/aliases                  the alias history (?alias=), oldest first
    GET    /admin/models/{model}/diff?a=1&b=production    what differs between two versions
    GET    /admin/timeline/{deployment}?at=&window_s=     what served a deployment at a moment (unix seconds)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.access import check_admin
from sluice.api.body import read_json_object
from sluice.api.errors import error_response, validation_error
from sluice.compose import AppState
from sluice.errors import BackendNotReady, ErrorClass, InvalidRequest, SluiceError
from sluice.registry import (
    PROTECTED_ALIASES,
    Adapter,
    RegistryError,
    RegistryNotFound,
    VersionSpec,
    alias_history,
    delete_alias,
    diff,
    get_version,
    last_gate,
    list_models,
    list_versions,
    register,
    set_alias,
    timeline_at,
)
from sluice.rollout import DeploymentRegistry, to_spec

MAX_JSON_FIELD_BYTES = 64 * 1024  # params, lineage, metadata: each at most this as JSON


class _AdapterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1, max_length=2048)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    rank: int | None = Field(None, gt=0)
    alpha: float | None = Field(None, gt=0)
    base_model: str | None = Field(None, max_length=512)


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(min_length=1, max_length=255)
    model: str = Field(min_length=1, max_length=512)


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(min_length=1, max_length=512)
    base_revision: str | None = Field(None, max_length=255)
    adapter: _AdapterBody | None = None
    prompt: str | None = Field(None, max_length=255)
    params: dict[str, Any] = {}
    targets: list[_Target] = []
    lineage: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    description: str | None = Field(None, max_length=4096)
    actor: str | None = Field(None, max_length=255)

    def spec(self) -> VersionSpec:
        for name in ("params", "lineage", "metadata"):
            if len(orjson.dumps(getattr(self, name))) > MAX_JSON_FIELD_BYTES:
                raise InvalidRequest(f"{name}: at most {MAX_JSON_FIELD_BYTES:,} bytes as JSON", param=name,
                                     code="too_large")
        adapter = self.adapter
        if adapter is not None and adapter.base_model is not None and adapter.base_model != self.base_model:
            raise InvalidRequest(f"adapter.base_model: the adapter was trained on {adapter.base_model!r}, not on "
                                 f"this version's base {self.base_model!r}", param="adapter.base_model",
                                 code="adapter_base_mismatch")
        return VersionSpec(base_model=self.base_model, base_revision=self.base_revision,
                           adapter=Adapter(**adapter.model_dump()) if adapter is not None else None,
                           prompt=self.prompt, params=self.params,
                           targets=[target.model_dump() for target in self.targets], lineage=self.lineage,
                           metadata=self.metadata, description=self.description)


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(gt=0)
    reason: str | None = Field(None, max_length=1024)
    actor: str | None = Field(None, max_length=255)
    force: bool = False  # move a protected alias to a version whose last gate failed (a reason is required)


class AliasDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1024)
    actor: str | None = Field(None, max_length=255)


async def models(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        return 200, {"object": "list", "data": await list_models(engine)}
    return await handle(request, work)


async def create_version(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(VersionBody, await read_json_object(request))
        version = await register(engine, request.path_params["model"], body.spec(), actor=body.actor)
        return 201, version.to_json()
    return await handle(request, work)


async def versions(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        found = await list_versions(engine, request.path_params["model"])
        if not found:
            raise RegistryEntryNotFound(f"no registered model {request.path_params['model']!r}: register one with "
                                        "sluice models register NAME --base ID", code="not_found")
        return 200, {"object": "list", "data": [version.to_json() for version in found]}
    return await handle(request, work)


async def show_version(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        version = await get_version(engine, request.path_params["model"], ref_of(request.path_params["ref"]))
        return 200, version.to_json()
    return await handle(request, work)


async def put_alias(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(AliasBody, await read_json_object(request))
        model, alias = request.path_params["model"], request.path_params["alias"]
        reason = await _gate_checked(engine, model, alias, body)
        event = await set_alias(engine, model, alias, body.version, actor=body.actor, reason=reason)
        return 200, event.to_json()
    return await handle(request, work)


async def _gate_checked(engine: AsyncEngine, model: str, alias: str, body: AliasBody) -> str | None:
    """The move's audited reason, after checking the version's last gate when the alias is protected: a failed
    gate refuses the move (409) unless `force` comes with a reason, which the audit trail then records."""
    if alias not in PROTECTED_ALIASES:
        return body.reason
    gated = await last_gate(engine, model, body.version)
    if gated is None or gated.gate_status != "fail":
        return body.reason
    failed = f"eval run {gated.id} (suite {gated.suite}, {gated.target})"
    if not body.force:
        raise GateFailed(f"{model}@{body.version} failed its last quality gate, {failed}: not moving {alias!r}. "
                         "Fix and gate it again, or override with force and a reason (sluice models alias "
                         f"{model}@{body.version} {alias} --force --reason TEXT)", code="gate_failed")
    if not body.reason:
        raise InvalidRequest(f"overriding the failed gate of {model}@{body.version} needs a reason", param="reason",
                             code="reason_required")
    return f"override of a failed gate, {failed}: {body.reason}"


async def remove_alias(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        raw = await request.body()
        body = parse_body(AliasDelete, orjson.loads(raw) if raw.strip() else {})
        event = await delete_alias(engine, request.path_params["model"], request.path_params["alias"],
                                   actor=body.actor, reason=body.reason)
        return 200, event.to_json()
    return await handle(request, work)


async def aliases(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        events = await alias_history(engine, request.path_params["model"], request.query_params.get("alias"))
        return 200, {"object": "list", "data": [event.to_json() for event in events]}
    return await handle(request, work)


async def diff_versions(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        model = request.path_params["model"]
        refs = [request.query_params.get(side) for side in ("a", "b")]
        if not all(refs):
            raise InvalidRequest("give both versions: ?a=<number or alias>&b=<number or alias>", param="a")
        a, b = [await get_version(engine, model, ref_of(ref)) for ref in refs]  # type: ignore[arg-type]
        changes = [{"field": path, "a": old, "b": new} for path, old, new in diff(a, b)]
        return 200, {"model": model, "a": a.version, "b": b.version, "changes": changes}
    return await handle(request, work)


async def timeline(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        model = request.path_params["model"]
        at = _number(request, "at", time.time())
        window_s = _number(request, "window_s", 300.0)
        if not 0 < window_s <= 86_400:
            raise InvalidRequest("window_s: from 1 second to 1 day", param="window_s", code="invalid_value")
        state: AppState = request.app.state.sluice
        configured = DeploymentRegistry.from_config(state.config).get(model)
        found = await timeline_at(engine, model, at, window_s=window_s,
                                  config_spec=None if configured is None else to_spec(configured))
        return 200, found.to_json()
    return await handle(request, work)


def _number(request: Request, name: str, default: float) -> float:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"{name}: a number (unix seconds), not {text!r}", param=name,
                             code="invalid_value") from None


def ref_of(ref: str) -> int | str | None:
    """A version number, `latest` (None), or an alias."""
    if ref == "latest":
        return None
    return int(ref) if ref.isdigit() else ref


async def handle(request: Request, work: Callable[[AsyncEngine], Awaitable[tuple[int, Any]]]) -> Response:
    state: AppState = request.app.state.sluice
    try:
        check_admin(request, state)
        if state.engine is None:
            raise BackendNotReady("The store is not open yet; try again in a moment.", code="store_not_ready")
        try:
            status, body = await work(state.engine)
        except RegistryError as error:
            raise _registry_error(error) from None
        except orjson.JSONDecodeError:
            raise InvalidRequest("The body must be a JSON object.", code="invalid_json") from None
    except SluiceError as error:
        return error_response(error)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class GateFailed(SluiceError):
    status_code = 409
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class RegistryEntryNotFound(SluiceError):
    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


def _registry_error(error: RegistryError) -> SluiceError:
    """Unknown models, versions and aliases are 404s; anything else the caller got wrong is a 400."""
    if isinstance(error, RegistryNotFound):
        return RegistryEntryNotFound(str(error), code="not_found")
    return InvalidRequest(str(error), code="invalid_registry_request")


def parse_body(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


routes = [
    Route("/admin/models", models, methods=["GET"]),
    Route("/admin/models/{model}/versions", create_version, methods=["POST"]),
    Route("/admin/models/{model}/versions", versions, methods=["GET"]),
    Route("/admin/models/{model}/versions/{ref}", show_version, methods=["GET"]),
    Route("/admin/models/{model}/aliases/{alias}", put_alias, methods=["PUT"]),
    Route("/admin/models/{model}/aliases/{alias}", remove_alias, methods=["DELETE"]),
    Route("/admin/models/{model}/aliases", aliases, methods=["GET"]),
    Route("/admin/models/{model}/diff", diff_versions, methods=["GET"]),
    Route("/admin/timeline/{model}", timeline, methods=["GET"]),
]
