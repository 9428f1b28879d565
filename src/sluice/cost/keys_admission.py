"""`KeyAdmission`, the admission stage: who is calling, which models it may use, its rate limits, its budget.

    authenticate (api, before the body is read) -> admit (pipeline, after routing) -> settle (pipeline, at the end)

No master key and no virtual key: the gateway is open and each step returns at once. The master key is
admin (no limits). A virtual key sets `ctx.key` / `ctx.team`; its RPM/TPM rules and its budget hold are
checked and taken in one atomic shared-state call; `settle` reconciles them in a background task.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import KeysConfig
from sluice.cost import keys_store as key_store
from sluice.cost.budget import KeyWindow, key_windows, ledger_name
from sluice.cost.keys import VirtualKey, hash_token, parse_key_id
from sluice.cost.keys_cache import KeyCache
from sluice.cost.keys_errors import BudgetExceeded, KeysUnavailable, ModelNotAllowed, RateLimitExceeded
from sluice.cost.keys_metrics import KeyMetrics
from sluice.cost.keys_service import KeyService
from sluice.cost.limits import prompt_tokens, rpm_rule, tpm_rule, used_tokens
from sluice.errors import Unauthorized
from sluice.state import (
    BudgetHold,
    BudgetRefused,
    BudgetSpend,
    BudgetWindow,
    Decision,
    Granted,
    RateRefused,
    RateRule,
    SharedState,
    StateError,
    Unseeded,
)

if TYPE_CHECKING:
    from sluice.backends import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
    from sluice.cost.pricing import GatewayPricing
    from sluice.gateway.context import RequestContext

log = logging.getLogger("sluice.keys")

_HOLD_PREFIX = os.urandom(6).hex()  # reservation ids unique across replicas (client request ids may repeat)
_hold_ids = count(1)
_WARN_EVERY_S = 10.0


@dataclass(slots=True, frozen=True)
class Reservation:
    """What `admit` took for one request, handed back by `settle` (`ctx.reservation`)."""

    key: VirtualKey
    rules: tuple[RateRule, ...]
    hold: BudgetHold | None
    counted_prompt_tokens: int


class KeyAdmission:
    def __init__(self, state: SharedState, config: KeysConfig, metrics: KeyMetrics,
                 master_key: str | None) -> None:
        self.state = state
        self.config = config
        self.metrics = metrics
        self.cache = KeyCache(state, config, metrics)
        self.service = KeyService(self.cache)  # what the admin API calls
        self.pricing: GatewayPricing | None = None  # set by the composition root (None: no estimates)
        self._master = master_key.encode() if master_key else None
        self._settling: set[asyncio.Task[None]] = set()
        self._seeding: dict[str, asyncio.Task[None]] = {}
        self._warned_at = 0.0

    async def start(self, engine: AsyncEngine) -> None:
        await self.cache.start(engine)
        if self._master is None and self.cache.any_keys:
            log.warning("virtual keys exist but no master key is set: /admin (key management included) is open "
                        "to anyone who can reach the gateway; set server.master_key or SLUICE_MASTER_KEY")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait for settlements in flight (bounded), then write the last-used times."""
        await self.settled(timeout_s)
        await self.cache.close()

    async def settled(self, timeout_s: float | None = None) -> None:
        """Wait until the settlements scheduled so far have reached the shared state."""
        if self._settling:
            await asyncio.wait(list(self._settling), timeout=timeout_s)

    @property
    def open(self) -> bool:
        """No master key and no virtual key: every request is let through, as before keys existed."""
        return self._master is None and not self.cache.any_keys

    async def authenticate(self, ctx: RequestContext, token: str) -> VirtualKey | None:
        """`identify`, and a virtual key becomes the request's (ctx.key, ctx.team)."""
        key = await self.identify(token)
        if key is not None:
            ctx.key = key
            ctx.team = key.team
        return key

    async def identify(self, token: str) -> VirtualKey | None:
        """The virtual key `token` is, None for the master key (admin, no limits) or an open gateway; else 401."""
        if self._master is not None and token and hmac.compare_digest(token.encode(), self._master):
            return None
        if self.open:
            return None
        key_id = parse_key_id(token)
        if key_id is None:
            self._refuse_auth("Invalid or missing API key. Send `Authorization: Bearer <key>`." if token else
                              "Missing API key. Send `Authorization: Bearer <key>`.")
        key = await self.cache.get(key_id)
        now = time.time()
        if key is None or not key.accepts(hash_token(token), now):
            self._refuse_auth("Invalid API key.")
        status = key.status(now)
        if status != "active":
            self._refuse_auth("This API key was revoked." if status == "revoked" else "This API key has expired.")
        self.cache.touch(key_id)
        return key

    async def admit(self, ctx: RequestContext,
                    request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest) -> None:
        key: VirtualKey | None = ctx.key
        if key is None:
            return
        if key.models and not key.allows_model(request.model):
            self.metrics.refuse("model_not_allowed")
            raise ModelNotAllowed(request.model, key.id)
        rules: list[RateRule] = []
        counted = 0
        if key.rpm is not None:
            rules.append(rpm_rule(key))
        if key.tpm is not None:
            counted = prompt_tokens(request, ctx.target.upstream_model if ctx.target is not None else "")
            rules.append(tpm_rule(key, counted))
        windows: tuple[KeyWindow, ...] = ()
        hold = None
        if key.has_budget:
            pricing = self.pricing
            estimate = (None if ctx.endpoint == "embeddings" or pricing is None
                        else pricing.estimate(ctx, request))  # type: ignore[arg-type]
            windows = key_windows(key, time.time())
            hold = BudgetHold(ledger_name(key.id), tuple(w.counter for w in windows),
                              f"{_HOLD_PREFIX}{next(_hold_ids):x}", max(0.0, estimate or 0.0),
                              self.config.reservation_ttl_s)
        if not rules and hold is None:
            return
        try:
            decision = await self._acquire(key, rules, hold, windows)
        except (StateError, KeysUnavailable) as exc:
            self._state_failed("acquire", exc)
            return
        if isinstance(decision, Granted):
            ctx.reservation = Reservation(key, tuple(rules), hold, counted)
            if decision.budget_used_ratio is not None:
                self.metrics.budget_used.observe(decision.budget_used_ratio)
            return
        if isinstance(decision, RateRefused):
            raise self._rate_error(key, rules[decision.rule], decision.retry_after_s)
        assert isinstance(decision, BudgetRefused) and hold is not None
        raise self._budget_error(key, windows[decision.window], decision, hold.amount_usd)

    def settle(self, ctx: RequestContext) -> None:
        """Reconcile in the background: the request path never waits on the shared state here."""
        reservation: Reservation | None = ctx.reservation
        if reservation is None:
            return
        cost = ctx.cost_usd or 0.0
        ctx.reservation = None
        adjustments = []
        for rule in reservation.rules:
            if rule.key.endswith(":tpm"):
                delta = used_tokens(ctx, reservation.counted_prompt_tokens) - reservation.counted_prompt_tokens
                if delta:
                    adjustments.append(RateRule(rule.key, rule.limit, rule.period_s, delta))
        spend = None
        if reservation.hold is not None:
            hold = reservation.hold
            spend = BudgetSpend(hold.ledger, self._settle_windows(reservation.key, hold), hold.reservation_id, cost)
        if not adjustments and spend is None:
            return
        task = asyncio.get_running_loop().create_task(self._settle(adjustments, spend))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _acquire(self, key: VirtualKey, rules: list[RateRule], hold: BudgetHold | None,
                       windows: tuple[KeyWindow, ...]) -> Decision:
        decision = await self.state.acquire(rules, hold)
        if isinstance(decision, Unseeded):
            await asyncio.gather(*(self._seed(key, windows[index]) for index in decision.windows))
            decision = await self.state.acquire(rules, hold)
        return decision

    async def _seed(self, key: VirtualKey, window: KeyWindow) -> None:
        """Start a budget counter from the request log (one read per counter, however many requests wait)."""
        name = window.counter.key
        task = self._seeding.get(name)
        if task is None:
            task = asyncio.create_task(self._read_and_seed(key, window))
            self._seeding[name] = task
            task.add_done_callback(lambda _: self._seeding.pop(name, None))
        await asyncio.shield(task)

    async def _read_and_seed(self, key: VirtualKey, window: KeyWindow) -> None:
        engine = self.cache.engine
        if engine is None:
            raise KeysUnavailable("The gateway is starting; try again shortly.", code="key_store_unavailable")
        try:
            spent = await key_store.spend_since(engine, key.id, window.starts_at)
        except (SQLAlchemyError, OSError) as exc:
            raise KeysUnavailable("The key store is unavailable; try again shortly.",
                                  code="key_store_unavailable") from exc
        await self.state.seed(window.counter.key, spent, window.counter.ttl_s)

    async def _settle(self, adjustments: list[RateRule], spend: BudgetSpend | None) -> None:
        try:
            await self.state.settle(adjustments, spend)
        except StateError as exc:  # the hold expires after keys.reservation_ttl_s; the log keeps the cost
            self.metrics.state_errors.labels("settle").inc()
            self._warn("settling a reservation failed: %s", exc)

    def _settle_windows(self, key: VirtualKey, hold: BudgetHold) -> tuple[BudgetWindow, ...]:
        # The windows of now: a request that crossed midnight counts on the day it ended.
        return tuple(window.counter for window in key_windows(key, time.time())) or hold.windows

    def _state_failed(self, operation: str, exc: Exception) -> None:
        self.metrics.state_errors.labels(operation).inc()
        if not self.config.fail_open:
            self.metrics.refuse("unavailable")
            raise KeysUnavailable("Rate limits and budgets cannot be checked right now; try again shortly.",
                                  code="state_unavailable") from exc
        self.metrics.failed_open.inc()
        self._warn("shared state unavailable, admitting without limits (keys.fail_open): %s", exc)

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(message, *args)

    def _refuse_auth(self, message: str) -> NoReturn:
        self.metrics.refuse("auth")
        raise Unauthorized(message, code="invalid_api_key")

    def _rate_error(self, key: VirtualKey, rule: RateRule, retry_after_s: float | None) -> RateLimitExceeded:
        limit = "tpm" if rule.key.endswith(":tpm") else "rpm"
        self.metrics.refuse("rate_limited", limit)
        if retry_after_s is None:
            return RateLimitExceeded(
                f"Request too large for key `{key.id}`: {rule.cost:.0f} prompt tokens exceed its limit of "
                f"{rule.limit:.0f} tokens per minute (TPM).", limit=limit, retry_after_s=None)
        what = "tokens per min (TPM)" if limit == "tpm" else "requests per min (RPM)"
        requested = f", requested {rule.cost:.0f}" if limit == "tpm" else ""
        return RateLimitExceeded(
            f"Rate limit reached for key `{key.id}` on {what}: limit {rule.limit:.0f}{requested}. "
            f"Please try again in {retry_after_s:.3g}s.", limit=limit, retry_after_s=retry_after_s)

    def _budget_error(self, key: VirtualKey, window: KeyWindow, refused: BudgetRefused,
                      estimate_usd: float) -> BudgetExceeded:
        self.metrics.refuse("budget", window.name)
        resets = "" if window.resets_at is None else (
            f" It resets at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(window.resets_at))}.")
        label = {"day": "daily", "month": "monthly", "total": "total"}[window.name]
        return BudgetExceeded(
            f"Key `{key.id}` has reached its {label} budget of {_limit_usd(refused.limit_usd)}: "
            f"${refused.spent_usd:.4f} spent and ${refused.reserved_usd:.4f} held by requests in flight; this "
            f"request may cost up to ${estimate_usd:.4f}.{resets}", window=window.name,
            retry_after_s=None if window.resets_at is None else max(1.0, window.resets_at - time.time()))


def _limit_usd(value: float) -> str:
    """A budget as it was set: $20.00, $0.02, $0.005 (cents alone would show $0.005 as $0.01)."""
    return f"${value:.2f}" if round(value, 2) == value else f"${value:.6g}"


__all__ = ["KeyAdmission", "Reservation"]
