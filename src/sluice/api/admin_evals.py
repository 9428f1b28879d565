"""Admin routes for eval runs kept against registry versions (master key when one is set; docs/evals.md):

    POST /admin/models/{model}/versions/{ref}/evals     record a run of that version -> 201
    GET  /admin/models/{model}/evals?version=&suite_hash=&limit=   its runs, newest first (no case results)
    GET  /admin/models/{model}/baseline?ref=&suite_hash=           the latest run of a version on a suite
    GET  /admin/evals/{id}                              one run with its case results
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.admin_models import handle, parse_body, ref_of
from sluice.api.body import read_json_object
from sluice.errors import InvalidRequest
from sluice.registry import EvalRun, baseline_run, get_eval_run, list_eval_runs, record_eval_run

EVAL_RUN_MAX_BODY_BYTES = 32 * 1024 * 1024  # a run's case results: answers cut short by the CLI
MAX_LISTED = 200
_HASH = r"^[0-9a-f]{64}$"


class EvalRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = Field(min_length=1, max_length=255)
    suite_hash: str = Field(pattern=_HASH)
    target: str = Field(min_length=1, max_length=2048)
    repeats: int = Field(1, gt=0)
    summary: dict[str, Any] = {}
    gate_status: Literal["pass", "fail", "inconclusive"] | None = None
    gate: dict[str, Any] | None = None
    cases: list[dict[str, Any]] = []
    actor: str | None = Field(None, max_length=255)

    def run(self) -> EvalRun:
        if (self.gate is None) != (self.gate_status is None):
            raise InvalidRequest("give gate and gate_status together, or neither", param="gate_status")
        return EvalRun(model="", version=0, suite=self.suite, suite_hash=self.suite_hash, target=self.target,
                       repeats=self.repeats, summary=self.summary, gate_status=self.gate_status, gate=self.gate,
                       cases=self.cases)


async def create_run(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        body = parse_body(EvalRunBody, await read_json_object(request, EVAL_RUN_MAX_BODY_BYTES))
        stored = await record_eval_run(engine, request.path_params["model"], ref_of(request.path_params["ref"]),
                                       body.run(), actor=body.actor)
        return 201, {**stored.to_json(), "cases": len(stored.cases)}
    return await handle(request, work)


async def runs(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        version = request.query_params.get("version")
        found = await list_eval_runs(engine, request.path_params["model"],
                                     None if version is None else ref_of(version),
                                     suite_hash=request.query_params.get("suite_hash"), limit=_limit(request))
        return 200, {"object": "list", "data": [_listed(run) for run in found]}
    return await handle(request, work)


async def baseline(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        suite_hash = request.query_params.get("suite_hash")
        if suite_hash is None:
            raise InvalidRequest("give ?suite_hash=<the suite's sha256>", param="suite_hash")
        found = await baseline_run(engine, request.path_params["model"],
                                   ref_of(request.query_params.get("ref", "latest")), suite_hash)
        return 200, found.to_json()
    return await handle(request, work)


async def show_run(request: Request) -> Response:
    async def work(engine: AsyncEngine) -> tuple[int, Any]:
        text = request.path_params["id"]
        if not text.isdigit():
            raise InvalidRequest(f"eval run ids are numbers, not {text!r}", param="id")
        return 200, (await get_eval_run(engine, int(text))).to_json()
    return await handle(request, work)


def _listed(run: EvalRun) -> dict[str, Any]:
    listed = run.to_json()
    del listed["cases"]
    return listed


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", "20")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LISTED:
        raise InvalidRequest(f"limit: a number from 1 to {MAX_LISTED}", param="limit")
    return int(text)


routes = [
    Route("/admin/models/{model}/versions/{ref}/evals", create_run, methods=["POST"]),
    Route("/admin/models/{model}/evals", runs, methods=["GET"]),
    Route("/admin/models/{model}/baseline", baseline, methods=["GET"]),
    Route("/admin/evals/{id}", show_run, methods=["GET"]),
]
