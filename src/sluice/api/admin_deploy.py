"""Admin routes of rollouts (master key when one is set): read deployments, change them, run canaries.

    GET  /admin/deployments                         every deployment in force, with its latest canary
    GET  /admin/deployments/{model}                 one, with its canary run and recent verdicts
    GET  /admin/deployments/{model}/history         the audit trail (?limit=50)
    GET  /admin/deployments/{model}/analysis        candidate vs stable over the last ?window_s=300 (not stored)
    POST /admin/deployments/{model}/{action}        set-weight, set-candidate, set-shadow, switch, start-canary,
                                                    promote, rollback; JSON body, `reason` optional

The caller's identity for the audit trail is the `x-sluice-actor` header (the CLI sends --actor / $USER).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.access import check_admin
from sluice.api.body import read_json_object
from sluice.api.errors import error_response, validation_error
from sluice.compose import AppState
from sluice.config import CanaryConfig
from sluice.errors import InvalidRequest, SluiceError
from sluice.registry import RegistryError, get_version, parse_ref
from sluice.rollout import CanaryRun, RolloutService, StoreNotOpen, TargetRef
from sluice.store import AuditEvent, VerdictRecord

ACTOR_HEADER = "x-sluice-actor"
MAX_LIMIT = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(min_length=1)
    model: str | None = None  # upstream model name; defaults to the public name
    weight: float = Field(100.0, ge=0)


class SetWeightBody(_Body):
    weight: float


class SetCandidateBody(_Body):
    candidate: list[TargetBody] = []  # its replicas; or:
    version: str | None = Field(None, max_length=200)  # a registry version (`support@3`, `support@staging`)
    strategy: Literal["canary", "blue_green"] | None = None
    weight: float = 0.0

    @model_validator(mode="after")
    def _one_source(self) -> SetCandidateBody:
        if bool(self.candidate) == (self.version is not None):
            raise ValueError("give the candidate's replicas (`candidate`) or a registry `version`, not both")
        return self


class SetShadowBody(_Body):
    shadow: list[TargetBody]  # [] stops mirroring
    sample_rate: float | None = Field(None, ge=0, le=1)  # default: keep
    max_concurrency: int | None = Field(None, ge=1)  # default: keep


class SwitchBody(_Body):
    to: Literal["stable", "candidate"] | None = None  # default: the side that has no traffic now


class StartCanaryBody(_Body):
    """Every key but `candidate` overrides `rollout.canary` from the config for this run."""

    candidate: list[TargetBody] | None = Field(None, min_length=1)  # default: the candidate in place
    steps: list[float] | None = None
    interval_s: float | None = None
    min_requests: int | None = None
    max_extensions: int | None = None
    on_exhausted: Literal["rollback", "advance", "hold"] | None = None
    log_grace_s: float | None = None
    thresholds: dict[str, float] | None = None
    webhooks: list[str] | None = None


async def list_deployments(request: Request) -> Response:
    async def work(state: AppState, rollout: RolloutService) -> Any:
        runs = await rollout.latest_runs()
        data = [{**rollout.view(d), "canary": run_view(runs.get(name))}
                for name, d in sorted(rollout.registry.all().items())]
        return {"object": "list", "data": data, "problems": dict(rollout.registry.problems)}
    return await _handle(request, work)


async def get_deployment(request: Request) -> Response:
    async def work(state: AppState, rollout: RolloutService) -> Any:
        model = rollout.require(request.path_params["model"]).model
        run = await rollout.latest_run(model)
        verdicts = await rollout.verdicts(run.id, 10) if run is not None and run.id is not None else []
        # read after the run: a run that ended is never shown beside the deployment from before its end
        return {**rollout.view(rollout.require(model)), "canary": run_view(run, verdicts)}
    return await _handle(request, work)


async def history(request: Request) -> Response:
    async def work(state: AppState, rollout: RolloutService) -> Any:
        limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
        events = await rollout.history(request.path_params["model"], limit)
        return {"object": "list", "data": [event_view(e) for e in events]}
    return await _handle(request, work)


async def analysis(request: Request) -> Response:
    async def work(state: AppState, rollout: RolloutService) -> Any:
        window_s = _int_param(request, "window_s", 300, 1, 7 * 86400)
        verdict, start, end = await rollout.analyze_recent(request.path_params["model"], window_s)
        return {"model": request.path_params["model"], "window_start": start, "window_end": end,
                **verdict.evidence()}
    return await _handle(request, work)


async def action(request: Request) -> Response:
    async def work(state: AppState, rollout: RolloutService) -> Any:
        model, name = request.path_params["model"], request.path_params["action"]
        handler = _ACTIONS.get(name)
        if handler is None:
            raise InvalidRequest(f"Unknown action `{name}`; one of {', '.join(_ACTIONS)}.", param="action",
                                 code="unknown_action")
        rollout.require(model)
        actor = _actor(request)
        data = await read_json_object(request)
        return await handler(rollout, state, model, data, actor)
    return await _handle(request, work)


async def _set_weight(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str) -> Any:
    body = _parse(SetWeightBody, data)
    deployment = await rollout.set_weight(model, body.weight, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment)}


async def _set_candidate(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str,
                         ) -> Any:
    body = _parse(SetCandidateBody, data)
    targets, reason = _targets(body.candidate, model), body.reason
    if body.version is not None:  # the registry says where that version is served
        targets, served = await _registry_targets(state, body.version)
        reason = f"registry version {served}" + (f": {reason}" if reason else "")
    deployment = await rollout.set_candidate(model, targets, strategy=body.strategy, weight=body.weight,
                                             actor=actor, reason=reason)
    return {"deployment": rollout.view(deployment)}


async def _registry_targets(state: AppState, ref: str) -> tuple[tuple[TargetRef, ...], str]:
    """A registry version's serving targets (and the version it resolved to); a 400 saying what is missing."""
    assert state.engine is not None
    try:
        name, version_ref = parse_ref(ref)
        version = await get_version(state.engine, name, version_ref)
    except RegistryError as error:
        raise InvalidRequest(f"version: {error}", param="version", code="unknown_version") from None
    served = f"{version.model}@{version.version}"
    if not version.spec.targets:
        raise InvalidRequest(f"version: {served} names no serving targets; register it with --target "
                             "BACKEND:MODEL", param="version", code="version_without_targets")
    unknown = [t["backend"] for t in version.spec.targets if t["backend"] not in state.config.backends]
    if unknown:
        raise InvalidRequest(f"version: {served} is served by {', '.join(unknown)}, which this gateway does not "
                             f"configure (backends: {', '.join(sorted(state.config.backends))})", param="version",
                             code="unknown_backend")
    return tuple(TargetRef(t["backend"], t["model"], 100.0) for t in version.spec.targets), served


async def _set_shadow(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str,
                      ) -> Any:
    body = _parse(SetShadowBody, data)
    deployment = await rollout.set_shadow(model, _targets(body.shadow, model), sample_rate=body.sample_rate,
                                          max_concurrency=body.max_concurrency, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment)}


async def _switch(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str) -> Any:
    body = _parse(SwitchBody, data)
    deployment = await rollout.switch(model, body.to, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment)}


async def _start_canary(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str,
                        ) -> Any:
    body = _parse(StartCanaryBody, data)
    settings = canary_settings(state.config.rollout.canary, body)
    candidate = None if body.candidate is None else _targets(body.candidate, model)
    deployment, run = await rollout.start_canary(model, candidate, settings, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment), "canary": run_view(run)}


async def _promote(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str) -> Any:
    body = _parse(_Body, data)
    deployment = await rollout.promote(model, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment), "canary": run_view(await rollout.latest_run(model))}


async def _rollback(rollout: RolloutService, state: AppState, model: str, data: dict[str, Any], actor: str) -> Any:
    body = _parse(_Body, data)
    deployment = await rollout.rollback(model, actor=actor, reason=body.reason)
    return {"deployment": rollout.view(deployment), "canary": run_view(await rollout.latest_run(model))}


_ACTIONS = {"set-weight": _set_weight, "set-candidate": _set_candidate, "set-shadow": _set_shadow, "switch": _switch,
            "start-canary": _start_canary, "promote": _promote, "rollback": _rollback}


def canary_settings(defaults: CanaryConfig, body: StartCanaryBody) -> CanaryConfig:
    """The config's canary defaults with the request's overrides (thresholds key by key)."""
    merged = defaults.model_dump()
    overrides = body.model_dump(exclude_none=True, exclude={"candidate", "reason", "thresholds"})
    merged.update(overrides)
    merged["thresholds"] = {**merged["thresholds"], **(body.thresholds or {})}
    try:
        return CanaryConfig.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        path = ".".join(str(part) for part in first["loc"]) or message.partition(":")[0]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise InvalidRequest(f"Invalid canary settings: {path}: {message.partition(': ')[2] or message}",
                             param=path, code="invalid_value") from None


def run_view(run: CanaryRun | None, verdicts: list[VerdictRecord] | None = None) -> dict[str, Any] | None:
    if run is None:
        return None
    settings = run.settings
    return {"id": run.id, "state": run.state, "step": run.step_index + 1, "steps": settings.steps,
            "weight": run.weight, "extensions": run.extensions, "interval_s": settings.interval_s,
            "started_at": run.started_at, "step_started_at": run.step_started_at,
            "next_analysis_at": run.due_at if run.state == "running" else None, "finished_at": run.finished_at,
            "actor": run.actor, "reason": run.reason, "settings": settings.model_dump(mode="json"),
            "verdicts": [verdict_view(v) for v in verdicts or []]}


def verdict_view(verdict: VerdictRecord) -> dict[str, Any]:
    return {"id": verdict.id, "step": verdict.step_index + 1, "weight": verdict.weight,
            "verdict": verdict.verdict, "action": verdict.action, "window_start": verdict.window_start,
            "window_end": verdict.window_end, "created_at": verdict.created_at, "evidence": verdict.evidence}


def event_view(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "model": event.model, "version": event.version, "action": event.action,
            "actor": event.actor, "reason": event.reason, "created_at": event.created_at, "before": event.before,
            "after": event.after}


async def _handle(request: Request, work: Any) -> Response:
    state: AppState = request.app.state.sluice
    try:
        check_admin(request, state)
        if state.rollout is None:
            raise StoreNotOpen("Rollouts are not wired into this gateway.", code="rollouts_disabled")
        body = await work(state, state.rollout.service)
    except SluiceError as error:
        return error_response(error)
    return Response(orjson.dumps(body), media_type="application/json")


def _parse(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _targets(bodies: list[TargetBody], model: str) -> tuple[TargetRef, ...]:
    return tuple(TargetRef(b.backend, b.model or model, b.weight) for b in bodies)


def _actor(request: Request) -> str:
    given = request.headers.get(ACTOR_HEADER, "").strip()
    if given and len(given) <= 128 and given.isprintable():
        return given
    return "api"


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequest(f"{name}: expected a whole number from {low} to {high}, not {text!r}", param=name,
                             code="invalid_value")
    return int(text)


# `path`: public model names may contain "/". The catch-all GET comes last, and app.py lists these routes
# after every other, so /admin/deployments/{model}/<anything else> routes defined elsewhere still match.
routes = [
    Route("/admin/deployments", list_deployments, methods=["GET"]),
    Route("/admin/deployments/{model:path}/history", history, methods=["GET"]),
    Route("/admin/deployments/{model:path}/analysis", analysis, methods=["GET"]),
    Route("/admin/deployments/{model:path}/{action}", action, methods=["POST"]),
    Route("/admin/deployments/{model:path}", get_deployment, methods=["GET"]),
]
