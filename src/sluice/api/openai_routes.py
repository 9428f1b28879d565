"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.body import read_body
from sluice.api.errors import error_response, validation_error
from sluice.api.streaming import EventStreamResponse
from sluice.backends import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, Endpoint
from sluice.compose import AppState
from sluice.cost import usd_header
from sluice.errors import InvalidRequest, SluiceError, Unauthorized
from sluice.gateway import Call, RequestContext
from sluice.prompts import prompt_use_of
from sluice.records import client_request_id, new_request_id
from sluice.structured import (
    CONSTRAINT_FIELDS,
    check_constraints,
    check_response_format,
    check_tools,
    has_tool_fields,
)

DEBUG_HEADER = "x-sluice-debug"  # `timing`: the answer carries a Server-Timing header with each stage's time
_MODELS: dict[Endpoint, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


async def chat_completions(request: Request) -> Response:
    return await _generate(request, "chat")


async def completions(request: Request) -> Response:
    return await _generate(request, "completions")


async def _generate(request: Request, endpoint: Endpoint) -> Response:
    state: AppState = request.app.state.sluice
    ctx = _context(request, endpoint)
    headers = _id_headers(ctx)
    call: Call | None = None
    try:
        call = Call(ctx, await _parse(request, state, endpoint, ctx))
        if ctx.stream:
            first, rest = await state.gateway.stream(call)
            _answer_headers(call, headers)
            return EventStreamResponse(first, rest, headers)  # type: ignore[return-value]
        completion = await state.gateway.complete(call)
    except SluiceError as error:
        if call is not None and call.response_headers is not None:  # what stages said before it failed
            headers.update(call.response_headers)
        return error_response(error, headers)
    _answer_headers(call, headers)
    return Response(orjson.dumps(completion.payload), media_type="application/json", headers=headers)


async def embeddings(request: Request) -> Response:
    state: AppState = request.app.state.sluice
    ctx = _context(request, "embeddings")
    headers = _id_headers(ctx)
    try:
        call = Call(ctx, await _parse(request, state, "embeddings", ctx))
        result = await state.gateway.embed(call)
    except SluiceError as error:
        return error_response(error, headers)
    _answer_headers(call, headers)
    return Response(orjson.dumps(result.payload), media_type="application/json", headers=headers)


async def list_models(request: Request) -> Response:
    state: AppState = request.app.state.sluice
    try:
        key = await authenticate(request, state)
    except SluiceError as error:
        return error_response(error)
    router = state.gateway.router
    data = []
    for name, deployment in state.gateway.deployments.all().items():
        if (key is not None and not key.allows_model(name)) or name in router.difficulty:
            continue  # a virtual key sees only the models it may call; router models are listed below
        model = state.config.models.get(name)
        targets = [{"backend": ref.backend, "type": state.backends[ref.backend].type, "model": ref.model,
                    "weight": ref.weight, "role": role}
                   for role, refs in (("stable", deployment.stable), ("candidate", deployment.candidate))
                   for ref in refs if ref.backend in state.backends]
        data.append({"id": name, "object": "model", "created": state.started_at, "owned_by": "sluice",
                     "description": model.description if model else None,
                     "endpoints": sorted(router.endpoints(deployment)), "targets": targets,
                     "fallbacks": list(router.policy(name).fallbacks)})
    for name, model in state.config.models.items():  # router models: public names without targets of their own
        if model.router is None or (key is not None and not key.allows_model(name)):
            continue
        data.append({"id": name, "object": "model", "created": state.started_at, "owned_by": "sluice",
                     "description": model.description, "endpoints": sorted(router.router_endpoints(name)),
                     "targets": [], "fallbacks": [], "router": model.router.model_dump()})
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


def _names_a_prompt(data: dict[str, Any], endpoint: Endpoint, request: Request) -> bool:
    """Whether the request names a registered prompt (checked here: a malformed reference is a 400 before any
    stage); the `prompt` stage renders it. A completion's own `prompt` is its text: only the header names one."""
    return prompt_use_of(data if endpoint == "chat" else {}, request.headers) is not None


def _validated(endpoint: Endpoint, data: dict[str, Any], prompted: bool) -> Any:
    """The request body as its endpoint's model. A request that names a prompt may leave out what the prompt
    renders (a chat's messages, a completion's prompt): the `prompt` stage fills it before anything reads it."""
    if not prompted:
        return _MODELS[endpoint].model_validate(data)
    if endpoint == "chat" and not data.get("messages"):
        body = ChatCompletionRequest.model_validate({**data, "messages": [{"role": "user", "content": ""}]})
        return body.model_copy(update={"messages": []})
    if endpoint == "completions" and data.get("prompt") is None:
        return CompletionRequest.model_validate({**data, "prompt": ""})
    return _MODELS[endpoint].model_validate(data)


async def _parse(request: Request, state: AppState, endpoint: Endpoint, ctx: RequestContext) -> Any:
    """Auth, size limit, JSON, schema — each failure an OpenAI-shaped 4xx, recorded like any request."""
    try:
        await authenticate(request, state, ctx)
        raw = await read_body(request, state.config.server.max_body_bytes, state.config.server.body_timeout_s)
        if state.recorder.keep_bodies:
            ctx.body_text = raw.decode("utf-8", "replace")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Invalid JSON body: {exc}", code="invalid_json") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        if isinstance(data.get("model"), str):
            ctx.model = data["model"]
        prompted = endpoint != "embeddings" and _names_a_prompt(data, endpoint, request)
        try:
            body = _validated(endpoint, data, prompted)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if "response_format" in data:  # checked here, before any stage or upstream sees the request
            if endpoint == "embeddings":
                raise InvalidRequest("response_format is not accepted on /v1/embeddings.", param="response_format",
                                     code="invalid_response_format")
            if data["response_format"] is not None:
                check_response_format(data["response_format"])
        if endpoint != "embeddings" and not CONSTRAINT_FIELDS.isdisjoint(data):
            check_constraints(data)  # vLLM's structured-output extras: well-formed, bounded, one at a time
        if endpoint == "chat" and has_tool_fields(data):
            check_tools(data)  # tools, tool_choice, parallel_tool_calls: the same rules on every backend
    except SluiceError as error:
        ctx.fail(error)
        state.recorder.record(ctx)
        raise
    ctx.headers = request.headers
    ctx.stream = bool(getattr(body, "stream", False))
    ctx.user = body.user  # type: ignore[attr-defined]
    if endpoint != "embeddings":
        ctx.request = body  # type: ignore[assignment]
        ctx.raw_body = data
    state.recorder.start(ctx, request.headers)
    return body


def _answer_headers(call: Call, headers: dict[str, str]) -> None:
    """What the answer says about itself: overhead so far, where it went, what stages added (`x-sluice-cache`),
    its cost once known (a stream's comes in its usage chunk), stage times when `x-sluice-debug: timing` asks."""
    ctx = call.ctx
    headers["x-sluice-overhead-ms"] = _ms(ctx.overhead_s(ctx.elapsed_s()))
    annotations = ctx.annotations
    if annotations is not None and "router.model" in annotations:  # a router model chose this model
        headers["x-sluice-routed-to"] = str(annotations["router.model"])
    target = ctx.target
    if target is not None:
        headers["x-sluice-target"] = target.name
        if target.fallback:  # served by a fallback model, not the one asked for
            headers["x-sluice-fallback"] = target.public_model
    if call.response_headers is not None:
        headers.update(call.response_headers)
    if ctx.cost_usd is not None and not ctx.stream:
        headers["x-sluice-cost-usd"] = usd_header(ctx.cost_usd)
    sent = ctx.headers
    if DEBUG_HEADER in sent and sent[DEBUG_HEADER] == "timing":  # `in` first: a miss raises no KeyError inside
        headers["server-timing"] = server_timing(ctx)


def server_timing(ctx: RequestContext) -> str:
    """W3C Server-Timing (browsers' dev tools show it): each stage's own time so far, upstream, queue, total own."""
    parts = [f"{stage};dur={seconds * 1000:.3f}" for stage, seconds in ctx.stage_s.items()]
    parts.append(f"upstream;dur={ctx.upstream_s * 1000:.3f}")
    if ctx.queue_s:
        parts.append(f"queue;dur={ctx.queue_s * 1000:.3f}")
    parts.append(f"overhead;dur={ctx.overhead_s(ctx.elapsed_s()) * 1000:.3f}")
    return ", ".join(parts)


async def authenticate(request: Request, state: AppState, ctx: RequestContext | None = None) -> Any:
    """/v1 auth: the master key, a virtual key (sets ctx.key; cost/ admission), or open while neither
    exists. Returns the virtual key or None. Admin routes use `check_key` (master key only)."""
    if state.admission is None:
        check_key(request, state)
        return None
    if ctx is None:
        return await state.admission.identify(bearer_token(request))
    return await state.admission.authenticate(ctx, bearer_token(request))


def bearer_token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")


def check_key(request: Request, state: AppState) -> None:
    if state.master_key is None:
        return
    token = bearer_token(request)
    if not state.key_matches(token):
        raise Unauthorized("Invalid or missing API key. Send `Authorization: Bearer <key>`.",
                           code="invalid_api_key")


def _context(request: Request, endpoint: Endpoint) -> RequestContext:
    """A new request under the gateway's own id; the client's `x-request-id` is kept beside it, never as it."""
    return RequestContext(new_request_id(), endpoint, request.client.host if request.client else None,
                          client_request_id=client_request_id(request.headers.get("x-request-id")))


def _id_headers(ctx: RequestContext) -> dict[str, str]:
    """`x-request-id`: the gateway's id (what `sluice logs show` takes); `x-client-request-id`: the client's, echoed."""
    headers = {"x-request-id": ctx.request_id}
    if ctx.client_request_id is not None:
        headers["x-client-request-id"] = ctx.client_request_id
    return headers


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
