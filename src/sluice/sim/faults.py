"""Fault injection: a plan (what can go wrong, how often) and the seeded dice that apply it per request."""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorFault(_Fault):
    """Answer `rate` of requests with HTTP `status` (429s carry `retry-after`)."""

    status: int = Field(ge=400, le=599)
    rate: float = Field(ge=0, le=1)
    retry_after_s: float | None = Field(None, ge=0)


class LatencySpikeFault(_Fault):
    """`rate` of requests wait `seconds` more before the engine sees them (their TTFT grows by that much)."""

    rate: float = Field(ge=0, le=1)
    seconds: float = Field(gt=0)


class StallFault(_Fault):
    """`rate` of streams pause `seconds` after `after_tokens` tokens, then carry on."""

    rate: float = Field(1.0, ge=0, le=1)
    seconds: float = Field(gt=0)
    after_tokens: int = Field(1, ge=0)


class DropFault(_Fault):
    """`rate` of streams are cut (connection closed, no [DONE]) after `after_tokens` tokens."""

    rate: float = Field(1.0, ge=0, le=1)
    after_tokens: int = Field(0, ge=0)


class RefuseFault(_Fault):
    """Close `rate` of new connections at once; with `for_s`, every new connection for that long."""

    rate: float = Field(0.0, ge=0, le=1)
    for_s: float | None = Field(None, gt=0)


class DegradedFault(_Fault):
    """The "degraded candidate" preset: every step `slowdown` times slower, and `error_rate` 5xx answers."""

    slowdown: float = Field(2.0, ge=1)
    error_rate: float = Field(0.05, ge=0, le=1)
    error_status: int = Field(500, ge=500, le=599)


class FaultPlan(_Fault):
    """Everything that may go wrong, as set by `--fault` flags or `POST /sim/faults`. Empty: nothing."""

    errors: tuple[ErrorFault, ...] = ()
    latency_spike: LatencySpikeFault | None = None
    stall: StallFault | None = None
    drop: DropFault | None = None
    refuse: RefuseFault | None = None
    degraded: DegradedFault | None = None
    seed: int = 0

    @property
    def slowdown(self) -> float:
        return self.degraded.slowdown if self.degraded else 1.0

    def error_table(self) -> list[tuple[int, float, float | None]]:
        table = [(e.status, e.rate, e.retry_after_s) for e in self.errors]
        if self.degraded and self.degraded.error_rate:
            table.append((self.degraded.error_status, self.degraded.error_rate, None))
        if sum(rate for _, rate, _ in table) > 1 + 1e-9:
            raise ValueError("error rates add up to more than 1")
        return table


@dataclass(slots=True, frozen=True)
class RequestFaults:
    """What fault injection decided for one request."""

    error_status: int | None = None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    stall_after_tokens: int | None = None
    stall_s: float = 0.0
    drop_after_tokens: int | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        names = [("error", self.error_status is not None), ("latency_spike", self.delay_s > 0),
                 ("stall", self.stall_after_tokens is not None), ("drop", self.drop_after_tokens is not None)]
        return tuple(name for name, active in names if active)


NO_FAULTS = RequestFaults()


class FaultInjector:
    """Rolls the dice for each request and connection. Given a seed, the n-th request always gets the
    same faults (requests and connections draw from separate streams, so keep-alive does not matter).
    """

    def __init__(self, plan: FaultPlan | None = None, *, now_s: float = 0.0) -> None:
        self.plan = FaultPlan()
        self._requests = random.Random(0)
        self._connections = random.Random(0)
        self._refuse_until_s = float("-inf")
        self._errors: list[tuple[int, float, float | None]] = []
        self.set_plan(plan or FaultPlan(), now_s=now_s)

    def set_plan(self, plan: FaultPlan, *, now_s: float) -> None:
        self._errors = plan.error_table()  # validates before anything changes
        self.plan = plan
        self._requests = random.Random(plan.seed)
        self._connections = random.Random(plan.seed + 1)
        refuse_for = plan.refuse.for_s if plan.refuse else None
        self._refuse_until_s = now_s + refuse_for if refuse_for else float("-inf")

    def for_request(self) -> RequestFaults:
        plan = self.plan
        # Always four draws, so one fault's settings never shift another's dice.
        roll_error, roll_spike, roll_stall, roll_drop = (self._requests.random() for _ in range(4))
        if not (self._errors or plan.latency_spike or plan.stall or plan.drop):
            return NO_FAULTS
        error_status, retry_after_s, threshold = None, None, 0.0
        for status, rate, retry_after in self._errors:
            threshold += rate
            if roll_error < threshold:
                error_status, retry_after_s = status, retry_after
                break
        spike, stall, drop = plan.latency_spike, plan.stall, plan.drop
        stalled = stall is not None and roll_stall < stall.rate
        dropped = drop is not None and roll_drop < drop.rate
        return RequestFaults(
            error_status=error_status,
            retry_after_s=retry_after_s if retry_after_s is not None else (1.0 if error_status == 429 else None),
            delay_s=spike.seconds if spike is not None and roll_spike < spike.rate else 0.0,
            stall_after_tokens=stall.after_tokens if stalled and stall else None,
            stall_s=stall.seconds if stalled and stall else 0.0,
            drop_after_tokens=drop.after_tokens if dropped and drop else None,
        )

    def refuse_connection(self, now_s: float) -> bool:
        refuse = self.plan.refuse
        if refuse is None:
            return False
        roll = self._connections.random()
        return now_s < self._refuse_until_s or roll < refuse.rate


def parse_fault_flag(flag: str) -> FaultPlan:
    """One `--fault` value as a plan: `KIND[:key=value,...]`, e.g. `error:status=500,rate=0.05`,
    `spike:rate=0.1,seconds=2`, `stall:seconds=5,after_tokens=10`, `drop:after_tokens=20`,
    `refuse:rate=0.2` or `refuse:for_s=30`, `degraded` or `degraded:slowdown=3,error_rate=0.1`, `seed:7`.
    """
    kind, _, rest = flag.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if kind == "seed":
        return FaultPlan(seed=int(rest))
    fields: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--fault {flag!r}: expected key=value, got {item!r}")
        fields[key.strip().replace("-", "_")] = value.strip()
    builders = {"error": lambda: FaultPlan(errors=(ErrorFault.model_validate(fields),)),
                "spike": lambda: FaultPlan(latency_spike=LatencySpikeFault.model_validate(fields)),
                "latency_spike": lambda: FaultPlan(latency_spike=LatencySpikeFault.model_validate(fields)),
                "stall": lambda: FaultPlan(stall=StallFault.model_validate(fields)),
                "drop": lambda: FaultPlan(drop=DropFault.model_validate(fields)),
                "refuse": lambda: FaultPlan(refuse=RefuseFault.model_validate(fields)),
                "degraded": lambda: FaultPlan(degraded=DegradedFault.model_validate(fields))}
    if kind not in builders:
        raise ValueError(f"--fault {flag!r}: unknown kind {kind!r}; one of {', '.join(sorted(builders))}, seed")
    return builders[kind]()


def combine(plans: list[FaultPlan]) -> FaultPlan:
    """Several `--fault` flags as one plan: errors add up, later single faults replace earlier ones."""
    merged: dict[str, object] = {"errors": ()}
    for plan in plans:
        for name in plan.model_fields_set:
            value = getattr(plan, name)
            merged[name] = (*merged["errors"], *value) if name == "errors" else value  # type: ignore[misc]
    return FaultPlan.model_validate(merged)
