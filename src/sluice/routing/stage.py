"""The chain's routing stages (gateway/chain.py): a router model's cost-based choice, then the caller's pool.

The terminal that follows (gateway/terminal.py) picks a replica from the pool per attempt, with retries and
fallbacks; these stages only decide where the request goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.errors import ModelNotFound
from sluice.routing.router import Router

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Next, Reply


class CostRoutingStage:
    """In a router model's chain only: which of its models serves this request (routing/difficulty_router.py)."""

    name = "cost_router"

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx = call.ctx
        decision = self.router.decide(call.serve, call.request, ctx.headers)  # type: ignore[arg-type]
        if decision is not None:  # the chosen model's deployment serves; ctx.model stays as sent
            call.serve = decision.model
            ctx.annotate("router.choice", decision.choice)  # easy | hard
            ctx.annotate("router.model", decision.model)  # also the x-sluice-routed-to header
            if decision.score is not None:  # None: the caller's x-sluice-difficulty header decided
                ctx.annotate("router.score", round(decision.score, 4))
        return await next(call)


class RouteStage:
    """The serving model's deployment -> the caller's side of a rollout -> that side's replicas (`call.pool`);
    a 404 for a model with no deployment, a 400 for an endpoint its replicas do not serve."""

    name = "route"

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx = call.ctx
        deployment = self.router.deployments.get(call.serve)
        if deployment is None:
            raise ModelNotFound(call.serve)
        side = deployment.side_for(ctx.user, ctx.headers)
        ctx.route_role = side
        pool = call.pool = self.router.pool(deployment, side, ctx.endpoint)
        ctx.target = pool.targets[0]  # provisional, for admission's estimate; each attempt sets its own
        return await next(call)


__all__ = ["CostRoutingStage", "RouteStage"]
