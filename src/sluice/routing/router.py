"""The router: per-model policies, per-target run-time state, pools built from deployments as they change, and
the cost-based routers of router models.

Deployments (rollout/) say which replicas serve a model now; they can be replaced at run time. The router
turns a deployment side's `TargetRef`s into a `Pool` of `Target`s once per deployment version, and keeps
the state of each (backend, upstream model) pair — outstanding requests, latency, breaker, health — across
versions, so a new weight does not reset what was learnt about a replica.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sluice.backends import Backend, ChatCompletionRequest, CompletionRequest, EmbeddingRequest, Endpoint
from sluice.config import ModelConfig, RoutingConfig, SluiceConfig
from sluice.errors import BackendNotReady, InvalidRequest
from sluice.routing.breaker import BreakerState, CircuitBreaker, NoBreaker
from sluice.routing.difficulty_router import Decision, DifficultyRouter, load_classifier, turns_of
from sluice.routing.policy import RoutePolicy
from sluice.routing.pool import Pool
from sluice.routing.target import Target, TargetState

if TYPE_CHECKING:
    from sluice.rollout import Deployment, DeploymentRegistry, Side, TargetRef
    from sluice.routing.metrics import RoutingMetrics


class Router:
    def __init__(self, deployments: DeploymentRegistry, backends: dict[str, Backend],
                 routing: RoutingConfig | None = None, models: Mapping[str, ModelConfig] | None = None, *,
                 metrics: RoutingMetrics | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 difficulty: Mapping[str, DifficultyRouter] | None = None) -> None:
        self.deployments = deployments
        self.difficulty = dict(difficulty or {})  # router model -> its cost-based router (no deployment of its own)
        self.backends = backends
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.clock = clock
        self._default_policy = RoutePolicy.build(routing or RoutingConfig())
        self._policies = {name: RoutePolicy.build(routing or RoutingConfig(), model)
                          for name, model in (models or {}).items()}
        self._states: dict[tuple[str, str], TargetState] = {}
        self._pools: dict[str, tuple[Deployment, dict[str, Pool]]] = {}  # model -> (version, side -> pool)
        if metrics is not None:
            metrics.watch(self)

    @classmethod
    def from_config(cls, config: SluiceConfig, deployments: DeploymentRegistry, backends: dict[str, Backend], *,
                    metrics: RoutingMetrics | None = None) -> Router:
        difficulty = {name: DifficultyRouter(model.router.easy, model.router.hard,
                                             load_classifier(model.router.classifier), model.router.threshold)
                      for name, model in config.models.items() if model.router is not None}
        return cls(deployments, backends, config.routing, config.models, metrics=metrics, difficulty=difficulty)

    def policy(self, model: str) -> RoutePolicy:
        """The model's policy; a model created at run time (not in the config) gets the `routing` defaults."""
        return self._policies.get(model, self._default_policy)

    def health_checks_configured(self) -> bool:
        return any(p.health_check.interval_s for p in (self._default_policy, *self._policies.values()))

    def pool(self, deployment: Deployment, side: Side, endpoint: Endpoint) -> Pool:
        """The pool serving `side` of this deployment version; a 400 when it cannot serve `endpoint`."""
        cached = self._pools.get(deployment.model)
        if cached is None or cached[0] is not deployment:
            cached = (deployment, {})
            self._pools[deployment.model] = cached
        pool = cached[1].get(side)
        if pool is None:
            pool = cached[1][side] = self._build_pool(deployment.model, deployment.targets_for(side))
        if endpoint not in pool.endpoints:
            served = ", ".join(sorted(pool.endpoints)) or "nothing"
            raise InvalidRequest(f"The model `{deployment.model}` does not support /v1/{endpoint} "
                                 f"(it serves: {served}).", param="model", code="unsupported_endpoint")
        return pool

    def decide(self, model: str, request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest | None,
               headers: Mapping[str, str]) -> Decision | None:
        """A router model's choice for this request (counted), None when `model` is not a router model; a 400
        when it cannot decide (embeddings, a bad `x-sluice-difficulty`)."""
        router = self.difficulty.get(model)
        if router is None:
            return None
        if request is None or isinstance(request, EmbeddingRequest):
            raise InvalidRequest(f"The model `{model}` routes by prompt difficulty; it does not serve "
                                 "/v1/embeddings.", param="model", code="unsupported_endpoint")
        decision = router.decide(turns_of(request), headers)
        if self.metrics is not None:
            self.metrics.router_decided(model, decision.choice)
        return decision

    def fallback_pool(self, model: str, endpoint: Endpoint, user: str | None, headers: Mapping[str, str],
                      request: ChatCompletionRequest | CompletionRequest | None = None) -> Pool | None:
        """The pool a fallback model would serve this caller from, or None when it cannot serve `endpoint`.

        A router model as a fallback decides on `request` as it would for a request sent to it: the pool is
        that of the model it chooses (`pool.model`)."""
        if model in self.difficulty:
            try:
                decision = self.decide(model, request, headers)
            except InvalidRequest:
                return None
            assert decision is not None
            model = decision.model
        deployment = self.deployments.get(model)
        if deployment is None:
            return None
        try:
            return self.pool(deployment, deployment.side_for(user, headers), endpoint).as_fallback()
        except (InvalidRequest, BackendNotReady):
            return None

    def endpoints(self, deployment: Deployment) -> frozenset[Endpoint]:
        """What the deployment's stable side serves (for /v1/models)."""
        cached = self._pools.get(deployment.model)
        pool = cached[1].get("stable") if cached is not None and cached[0] is deployment else None
        if pool is None:
            pool = self._build_pool(deployment.model, deployment.targets_for("stable"))
        return pool.endpoints

    def router_endpoints(self, model: str) -> frozenset[Endpoint]:
        """What the router model `model` serves (for /v1/models): chat and completions, where both of the
        models it chooses from serve them."""
        router = self.difficulty[model]
        served: frozenset[Endpoint] = frozenset(("chat", "completions"))
        for chosen in (router.easy, router.hard):
            deployment = self.deployments.get(chosen)
            served &= self.endpoints(deployment) if deployment is not None else frozenset()
        return served

    def states(self) -> list[TargetState]:
        return list(self._states.values())

    def checked_targets(self) -> list[tuple[TargetState, Backend, RoutePolicy]]:
        """Every replica of every current deployment whose model has active health checks on."""
        seen: dict[tuple[str, str], tuple[TargetState, Backend, RoutePolicy]] = {}
        for name, deployment in self.deployments.all().items():
            policy = self.policy(name)
            if not policy.health_check.interval_s:
                continue
            for ref in (*deployment.targets_for("stable"), *deployment.targets_for("candidate")):
                backend = self.backends.get(ref.backend)
                if backend is not None and (ref.backend, ref.model) not in seen:
                    seen[(ref.backend, ref.model)] = (self.state_for(ref.backend, ref.model, policy), backend,
                                                      policy)
        return list(seen.values())

    def state_for(self, backend: str, model: str, policy: RoutePolicy) -> TargetState:
        """The replica's state, created on first sight with the breaker settings of the model naming it."""
        key = (backend, model)
        state = self._states.get(key)
        if state is None:
            config = policy.circuit_breaker
            breaker: CircuitBreaker | NoBreaker = NoBreaker()
            if config.enabled:
                breaker = CircuitBreaker(config, on_change=self._on_breaker_change(backend, model))
            state = self._states[key] = TargetState(backend, model, breaker)
        return state

    def _build_pool(self, model: str, refs: tuple[TargetRef, ...]) -> Pool:
        policy = self.policy(model)
        targets = []
        for ref in refs:
            backend = self.backends.get(ref.backend)
            if backend is None:
                raise BackendNotReady(f"The deployment of `{model}` names backend `{ref.backend}`, which this "
                                      "gateway does not have.", code="backend_not_configured")
            targets.append(Target(backend, ref.model, ref.weight, self.state_for(ref.backend, ref.model, policy),
                                  model))
        return Pool(model, tuple(targets), policy)

    def _on_breaker_change(self, backend: str, model: str) -> Callable[[BreakerState], None]:
        def changed(state: BreakerState) -> None:
            if self.metrics is not None:
                self.metrics.breaker_changed(backend, model, state)
        return changed


__all__ = ["Router"]
