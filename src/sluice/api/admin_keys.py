"""Admin routes for virtual keys (master key when one is set; a virtual key is never admin):

    POST  /admin/keys                  create -> 201 {"key": {...}, "secret": "sk-sluice-…"} (the secret, once)
    GET   /admin/keys                  list (?team=&owner=&include_revoked=true)
    GET   /admin/keys/{id}             one key, with its spend (request log) and what it holds now
    PATCH /admin/keys/{id}             change settings; `null` clears one
    POST  /admin/keys/{id}/rotate      new secret, same id and settings ({"grace_s": 3600} keeps the old one)
    POST  /admin/keys/{id}/revoke      the key stops working on every replica
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.access import check_admin
from sluice.api.body import read_json_object
from sluice.api.errors import error_response, validation_error
from sluice.compose import AppState
from sluice.cost import KeyNotFound, KeyService, VirtualKey
from sluice.errors import BackendNotReady, InvalidRequest, SluiceError

MAX_GRACE_S = 30 * 86_400
MAX_METADATA_BYTES = 16 * 1024  # as JSON; metadata rides along with every key read
_ModelPattern = Field(min_length=1, max_length=255)


class _KeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(None, max_length=255)
    team: str | None = Field(None, min_length=1, max_length=255)
    models: list[str] | None = None  # glob patterns (`gpt-4o*`); omitted or empty: every model
    budget_day_usd: float | None = Field(None, ge=0)
    budget_month_usd: float | None = Field(None, ge=0)
    budget_total_usd: float | None = Field(None, ge=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    expires_at: float | None = Field(None, gt=0)  # unix seconds
    expires_in_s: float | None = Field(None, gt=0)  # or: this long from now
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        if metadata and len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
            raise PydanticCustomError("too_large", "at most {limit} bytes as JSON", {"limit": MAX_METADATA_BYTES})
        return metadata

    @model_validator(mode="after")
    def _one_expiry(self) -> _KeySettings:
        if self.expires_at is not None and self.expires_in_s is not None:
            raise ValueError("give expires_at or expires_in_s, not both")
        if self.models is not None and any(not pattern.strip() for pattern in self.models):
            raise ValueError("models: patterns must not be empty")
        return self

    def settings(self) -> dict[str, Any]:
        """The fields the caller sent (an explicit null clears one), as VirtualKey settings."""
        values = self.model_dump(exclude_unset=True)
        expires_in_s = values.pop("expires_in_s", None)
        if expires_in_s is not None:
            values["expires_at"] = time.time() + expires_in_s
        if "models" in values:
            values["models"] = tuple(values["models"] or ())
        if "metadata" in values:
            values["metadata"] = values["metadata"] or {}
        return values


class KeyCreate(_KeySettings):
    name: str = Field(min_length=1, max_length=255)


class KeyUpdate(_KeySettings):
    name: str | None = Field(None, min_length=1, max_length=255)


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float = Field(0.0, ge=0, le=MAX_GRACE_S)  # the old secret keeps working this long


async def create_key(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        body = _parse(KeyCreate, await read_json_object(request))
        settings = body.settings()
        expires_at = settings.get("expires_at")
        if expires_at is not None and expires_at <= time.time():
            moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
            raise InvalidRequest(f"expires_at: {moment} is in the past; a new key must expire in the future.",
                                 param="expires_at", code="invalid_value")
        key, secret = await service.create(settings)
        return 201, {"key": key.public(time.time()), "secret": secret}
    return await _handle(request, work)


async def list_keys(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        query = request.query_params
        keys = await service.list(team=query.get("team"), owner=query.get("owner"),
                                  include_revoked=query.get("include_revoked", "").lower() in ("1", "true", "yes"))
        now = time.time()
        return 200, {"object": "list", "data": [key.public(now) for key in keys]}
    return await _handle(request, work)


async def show_key(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        key = await _existing(service, request)
        spend = await service.spend(key)
        return 200, {**key.public(time.time()), "spend": spend.to_dict()}
    return await _handle(request, work)


async def update_key(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        key_id = request.path_params["key_id"]
        body = _parse(KeyUpdate, await read_json_object(request))
        changes = body.settings()
        if changes.get("name", "") is None:
            raise InvalidRequest("name cannot be cleared.", param="name", code="invalid_value")
        key = await service.update(key_id, changes)
        if key is None:
            raise KeyNotFound(key_id)
        return 200, key.public(time.time())
    return await _handle(request, work)


async def rotate_key(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        body = _parse(KeyRotate, await read_json_object(request))
        current = await _existing(service, request)
        if current.revoked_at is not None:
            raise InvalidRequest(f"Key `{current.id}` is revoked; create a new one.", param="id", code="key_revoked")
        rotated = await service.rotate(current.id, body.grace_s)
        if rotated is None:
            raise KeyNotFound(current.id)
        key, secret = rotated
        return 200, {"key": key.public(time.time()), "secret": secret}
    return await _handle(request, work)


async def revoke_key(request: Request) -> Response:
    async def work(service: KeyService) -> tuple[int, Any]:
        key_id = request.path_params["key_id"]
        key = await service.revoke(key_id)
        if key is None:
            raise KeyNotFound(key_id)
        return 200, key.public(time.time())
    return await _handle(request, work)


async def _handle(request: Request, work: Callable[[KeyService], Awaitable[tuple[int, Any]]]) -> Response:
    state: AppState = request.app.state.sluice
    try:
        check_admin(request, state)
        if state.admission is None or state.engine is None:
            raise BackendNotReady("The store is not open yet; try again in a moment.", code="store_not_ready")
        status, body = await work(state.admission.service)
    except SluiceError as error:
        return error_response(error)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _existing(service: KeyService, request: Request) -> VirtualKey:
    key_id = request.path_params["key_id"]
    key = await service.get(key_id)
    if key is None:
        raise KeyNotFound(key_id)
    return key


def _parse(model: type[_KeySettings] | type[KeyRotate], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", show_key, methods=["GET"]),
    Route("/admin/keys/{key_id}", update_key, methods=["PATCH"]),
    Route("/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
]
