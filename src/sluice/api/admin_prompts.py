"""Admin routes for the prompt registry (master key when one is set; docs/prompts.md):

    GET    /admin/prompts                                  prompts: kind, versions, latest, labels
    POST   /admin/prompts/{name}/versions                  create a version -> 201 (numbered by the store)
    GET    /admin/prompts/{name}/versions                  its versions, oldest first
    GET    /admin/prompts/{name}/versions/{ref}            one version: a number, a label, a semver or `latest`
    PUT    /admin/prompts/{name}/labels/{label}            point a label at a version {"version", "reason", "actor"}
    DELETE /admin/prompts/{name}/labels/{label}            remove a label (audited too)
    POST   /admin/prompts/{name}/labels/{label}/rollback   back to where it pointed before its last move
    GET    /admin/prompts/{name}/labels                    the label history (?label=), oldest first
    GET    /admin/prompts/{name}/diff?a=1&b=production     what differs between two versions
    POST   /admin/prompts/{name}/render                    {"ref", "variables"} -> the text or messages, config
    GET    /admin/prompts/export?name=                     every version and label of the prompts (all by default)
    POST   /admin/prompts/import                           {"source", "prompts": [...], "actor"}: make them the store's

Every change (a version, a label move, an import) is announced on the shared state (`prompts.announce_change`),
so that each replica's request-time resolver drops what it kept of that prompt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.admin_models import handle, parse_body
from sluice.api.body import read_json_object
from sluice.compose import AppState
from sluice.errors import ErrorClass, InvalidRequest, SluiceError
from sluice.prompts import (
    PromptBundle,
    PromptConflict,
    PromptDocument,
    PromptError,
    PromptNotFound,
    PromptRef,
    announce_change,
    check_label,
    compiled,
    create_version,
    delete_label,
    diff,
    export_prompts,
    get_version,
    import_prompts,
    label_history,
    list_prompts,
    list_versions,
    rollback_label,
    selector,
    set_label,
)

CREATE_MAX_BODY_BYTES = 1024 * 1024  # a version: its templates, at most 256 KiB each
IMPORT_MAX_BODY_BYTES = 32 * 1024 * 1024  # a whole folder of prompts


class CreateBody(PromptDocument):
    labels: list[str] = Field(default_factory=list)  # point these at the new version (each a move, audited)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | str  # a number, or a semver, another label, `latest`
    reason: str | None = Field(None, max_length=1024)
    actor: str | None = Field(None, max_length=255)


class LabelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1024)
    actor: str | None = Field(None, max_length=255)


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: int | str | None = None  # what follows the `@`: a number, a label, a semver; none: the latest
    variables: dict[str, Any] = {}


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=1024)  # where they came from: the audit trail's `import from DIR`
    prompts: list[Any]
    actor: str | None = Field(None, max_length=255)


Work = Callable[[AsyncEngine], Awaitable[tuple[int, Any]]]


async def prompts(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        return 200, {"object": "list", "data": [summary.to_json() for summary in await list_prompts(engine)]}
    return await _handle(request, work)


async def create(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(CreateBody, await read_json_object(request, CREATE_MAX_BODY_BYTES))
        name = request.path_params["name"]
        for label in body.labels:
            check_label(label)  # before the version exists: a bad label creates nothing
        version = await create_version(engine, name, body.spec())
        for label in body.labels:
            await set_label(engine, name, label, version.version, actor=body.author, reason="set when created")
        if body.labels:
            version = await get_version(engine, PromptRef(name, version=version.version))
        await _announce(request, name)
        warnings = compiled(version.spec, version.content_hash).warnings()
        return 201, {**version.to_json(), "warnings": warnings}
    return await _handle(request, work)


async def versions(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        found = await list_versions(engine, request.path_params["name"])
        return 200, {"object": "list", "data": [version.to_json() for version in found]}
    return await _handle(request, work)


async def show(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        name = request.path_params["name"]
        return 200, (await get_version(engine, selector(name, request.path_params["ref"]))).to_json()
    return await _handle(request, work)


async def put_label(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(LabelBody, await read_json_object(request))
        name = request.path_params["name"]
        event = await set_label(engine, name, request.path_params["label"], body.version, actor=body.actor,
                                reason=body.reason)
        await _announce(request, name)
        return 200, event.to_json()
    return await _handle(request, work)


async def remove_label(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        raw = await request.body()
        body = parse_body(LabelChange, orjson.loads(raw) if raw.strip() else {})
        name = request.path_params["name"]
        event = await delete_label(engine, name, request.path_params["label"], actor=body.actor, reason=body.reason)
        await _announce(request, name)
        return 200, event.to_json()
    return await _handle(request, work)


async def rollback(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        raw = await request.body()
        body = parse_body(LabelChange, orjson.loads(raw) if raw.strip() else {})
        name = request.path_params["name"]
        event = await rollback_label(engine, name, request.path_params["label"], actor=body.actor,
                                     reason=body.reason)
        await _announce(request, name)
        return 200, event.to_json()
    return await _handle(request, work)


async def history(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        events = await label_history(engine, request.path_params["name"], request.query_params.get("label"))
        return 200, {"object": "list", "data": [event.to_json() for event in events]}
    return await _handle(request, work)


async def diff_versions(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        name = request.path_params["name"]
        refs = [request.query_params.get(side) for side in ("a", "b")]
        if not all(refs):
            raise InvalidRequest("give both versions: ?a=<number, label or semver>&b=<number, label or semver>",
                                 param="a")
        a, b = [await get_version(engine, selector(name, ref)) for ref in refs]
        return 200, {"name": name, **diff(a, b).to_json()}
    return await _handle(request, work)


async def render_version(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(RenderBody, await read_json_object(request, CREATE_MAX_BODY_BYTES))
        version = await get_version(engine, selector(request.path_params["name"], body.ref))
        rendered = compiled(version.spec, version.content_hash).render(body.variables)
        return 200, {"name": version.name, "version": version.version, "semver": version.spec.semver,
                     "labels": list(version.labels), **rendered.to_json()}
    return await _handle(request, work)


async def export(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        bundles = await export_prompts(engine, request.query_params.getlist("name"))
        return 200, {"object": "list", "data": [bundle.to_json() for bundle in bundles]}
    return await _handle(request, work)


async def import_(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(ImportBody, await read_json_object(request, IMPORT_MAX_BODY_BYTES))
        bundles = [PromptBundle.from_json(bundle, f"prompts[{index}]") for index, bundle in enumerate(body.prompts)]
        report = await import_prompts(engine, bundles, source=body.source, actor=body.actor)
        for name in report.names:
            await _announce(request, name)
        return 200, report.to_json()
    return await _handle(request, work)


async def _announce(request: Request, name: str) -> None:
    state: AppState = request.app.state.sluice
    await announce_change(state.shared_state, name)


async def _handle(request: Request, work: Work) -> Response:
    async def mapped(engine: AsyncEngine) -> tuple[int, Any]:
        try:
            return await work(engine)
        except PromptError as error:
            raise _prompt_error(error) from None
    return await handle(request, mapped)


class PromptEntryNotFound(SluiceError):
    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class PromptStoreConflict(SluiceError):
    status_code = 409
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


def _prompt_error(error: PromptError) -> SluiceError:
    """Unknown prompts, versions and labels are 404s; a store that disagrees is a 409; anything else a 400."""
    if isinstance(error, PromptNotFound):
        return PromptEntryNotFound(str(error), param=error.param, code=error.code)
    if isinstance(error, PromptConflict):
        return PromptStoreConflict(str(error), param=error.param, code=error.code)
    return InvalidRequest(str(error), param=error.param, code=error.code)


routes = [
    Route("/admin/prompts", prompts, methods=["GET"]),
    Route("/admin/prompts/export", export, methods=["GET"]),
    Route("/admin/prompts/import", import_, methods=["POST"]),
    Route("/admin/prompts/{name}/versions", create, methods=["POST"]),
    Route("/admin/prompts/{name}/versions", versions, methods=["GET"]),
    Route("/admin/prompts/{name}/versions/{ref}", show, methods=["GET"]),
    Route("/admin/prompts/{name}/labels/{label}", put_label, methods=["PUT"]),
    Route("/admin/prompts/{name}/labels/{label}", remove_label, methods=["DELETE"]),
    Route("/admin/prompts/{name}/labels/{label}/rollback", rollback, methods=["POST"]),
    Route("/admin/prompts/{name}/labels", history, methods=["GET"]),
    Route("/admin/prompts/{name}/diff", diff_versions, methods=["GET"]),
    Route("/admin/prompts/{name}/render", render_version, methods=["POST"]),
]
