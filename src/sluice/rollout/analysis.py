"""Automated canary analysis: compare the candidate's requests with stable's over one window.

A check fails only when the candidate is worse beyond chance (one-sided test, p < alpha) AND by more than
its margin, so neither a lucky outlier nor a significant-but-negligible shift fails a canary:

  error_rate  two-proportion z-test on failure rates; margin: absolute increase in the rate
  ttft, tpot, e2e  Mann-Whitney U on successful requests' latencies; margin: relative increase of the P99
  cost        Mann-Whitney U on cost per request; margin: relative increase of the mean (priced requests only)

A request of one side that a fallback model answered (its replicas failed; routing/ moved on) is a failure of
that side: the client got an answer, but not from the version under test, and counting it as a success would
hide a broken candidate behind a healthy fallback.

The verdict is `fail` if any check fails, else `inconclusive` when either side has fewer than
`min_requests` requests, else `pass`. A latency or cost check with fewer than `min_requests` values on a
side is skipped (non-streamed requests have no TTFT; unpriced targets no cost), and so is cost when a
target is priced by GPU-hours: a canary on its own GPU at 5 % of the traffic costs more per request only
because its GPU idles more.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from sluice.config import CanaryThresholds
from sluice.rollout.deployment import Deployment
from sluice.rollout.stats import mann_whitney_greater, percentile, relative_increase, two_proportion_z

Outcome = Literal["pass", "fail", "inconclusive"]
CheckOutcome = Literal["pass", "fail", "skipped"]

# Errors that say something about the version that served the request (sluice.errors.ErrorClass values).
# Other classes — the client's own mistakes ("4xx"), clients that hung up — are left out of both sides.
FAILURE_CLASSES = frozenset({"5xx", "timeout", "upstream_rejected"})


class LoggedRequest(Protocol):
    """What analysis reads of a request-log row (store/deployments.py `RoleRow`)."""

    route_role: str | None
    error_class: str | None
    target: str | None  # the backend that answered (a fallback model's, when the side's replicas gave up)
    upstream_model: str | None
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    cost_usd: float | None


@dataclass(slots=True, frozen=True)
class SideSample:
    """One side's requests in a window: counts, and the values of its successful requests."""

    requests: int = 0
    failures: int = 0  # fallbacks included
    ttft_s: tuple[float, ...] = ()
    tpot_s: tuple[float, ...] = ()
    e2e_s: tuple[float, ...] = ()
    cost_usd: tuple[float, ...] = ()
    fallbacks: int = 0  # answered by a fallback model: counted in `failures`

    @classmethod
    def of(cls, rows: Iterable[LoggedRequest], targets: Collection[tuple[str, str]] | None = None) -> SideSample:
        """`targets`: the side's (backend, upstream model) pairs; an answer from any other is a fallback."""
        requests = failures = fallbacks = 0
        values: dict[str, list[float]] = {"ttft_s": [], "tpot_s": [], "e2e_s": [], "cost_usd": []}
        for row in rows:
            if row.error_class is not None:
                if row.error_class in FAILURE_CLASSES:
                    requests += 1
                    failures += 1
                continue  # any other class (the client's mistake, a hang-up) says nothing about the version
            requests += 1
            if targets is not None and row.target is not None and (row.target, row.upstream_model) not in targets:
                failures += 1
                fallbacks += 1
                continue  # the fallback's latency and cost are not the version's
            for name, bucket in values.items():
                value = getattr(row, name)
                if value is not None:
                    bucket.append(float(value))
        return cls(requests, failures, *(tuple(values[name]) for name in ("ttft_s", "tpot_s", "e2e_s",
                                                                            "cost_usd")), fallbacks)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "failures": self.failures, "fallbacks": self.fallbacks,
                               "failure_rate": round(self.failure_rate, 6)}
        for name in ("ttft_s", "tpot_s", "e2e_s"):
            values = getattr(self, name)
            stem = name.removesuffix("_s")
            out[f"{stem}_n"] = len(values)
            out[f"{stem}_p50_s"] = percentile(values, 50) if values else None
            out[f"{stem}_p99_s"] = percentile(values, 99) if values else None
        out["cost_n"] = len(self.cost_usd)
        out["cost_mean_usd"] = statistics.fmean(self.cost_usd) if self.cost_usd else None
        return out


Targets = frozenset[tuple[str, str]]  # (backend, upstream model) pairs


def side_targets(deployments: Iterable[Deployment]) -> tuple[Targets, Targets]:
    """Every (backend, upstream model) that served as stable, and as candidate, in any of `deployments` (the
    versions in force over a window)."""
    stable: set[tuple[str, str]] = set()
    candidate: set[tuple[str, str]] = set()
    for deployment in deployments:
        stable.update((t.backend, t.model) for t in deployment.stable)
        candidate.update((t.backend, t.model) for t in deployment.candidate)
    return frozenset(stable), frozenset(candidate)


def split_by_role(rows: Iterable[LoggedRequest], targets: tuple[Targets, Targets] | None = None,
                  ) -> tuple[SideSample, SideSample]:
    """(stable, candidate) samples of request-log rows, by their `route_role`. With each side's `targets`
    (`side_targets`), a row answered by none of its side's (a fallback model) counts as that side's failure."""
    rows = list(rows)
    stable, candidate = (None, None) if targets is None else targets
    return (SideSample.of((r for r in rows if r.route_role == "stable"), stable),
            SideSample.of((r for r in rows if r.route_role == "candidate"), candidate))


@dataclass(slots=True, frozen=True)
class Check:
    name: str  # error_rate | ttft | tpot | e2e | cost
    outcome: CheckOutcome
    stable: float | None  # failure rate, P99 (s) or mean cost (USD)
    candidate: float | None
    increase: float | None  # absolute for error_rate, relative for the others
    threshold: float
    p_value: float | None
    note: str = ""


@dataclass(slots=True, frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    stable: SideSample
    candidate: SideSample
    min_requests: int
    alpha: float

    def evidence(self) -> dict[str, Any]:
        """JSON-ready: what the store records and the API shows (no raw samples)."""
        return {"verdict": self.outcome, "reasons": list(self.reasons), "min_requests": self.min_requests,
                "alpha": self.alpha, "stable": self.stable.summary(), "candidate": self.candidate.summary(),
                "checks": [asdict(check) for check in self.checks]}


def analyze(stable: SideSample, candidate: SideSample, thresholds: CanaryThresholds, min_requests: int, *,
            compare_cost: bool = True, compare_latency: bool = True) -> Verdict:
    """The verdict on one window. `compare_cost=False` skips the cost check (GPU-hour priced targets, whose
    cost per request follows how busy each side's GPUs are rather than the version); `compare_latency=False`
    skips latency (a baseline served earlier, under another load, is no control for latency)."""
    checks = []
    if stable.requests and candidate.requests:
        checks.append(_error_rate(stable, candidate, thresholds))
    latency = (("ttft", thresholds.max_ttft_p99_increase), ("tpot", thresholds.max_tpot_p99_increase),
               ("e2e", thresholds.max_e2e_p99_increase))
    for name, margin in latency:
        if not compare_latency:
            checks.append(Check(name, "skipped", None, None, None, margin, None,
                                "no stable traffic in this window: latency is not compared with an earlier one"))
            continue
        checks.append(_shift(name, getattr(stable, f"{name}_s"), getattr(candidate, f"{name}_s"), margin,
                             thresholds.alpha, min_requests, lambda v: percentile(v, 99), "P99"))
    if compare_cost:
        checks.append(_shift("cost", stable.cost_usd, candidate.cost_usd, thresholds.max_cost_increase,
                             thresholds.alpha, min_requests, statistics.fmean, "mean"))
    else:
        checks.append(Check("cost", "skipped", None, None, None, thresholds.max_cost_increase, None,
                            "GPU-hour priced: cost per request follows each side's load, not the version"))
    failed = [c for c in checks if c.outcome == "fail"]
    if failed:
        return Verdict("fail", tuple(c.note for c in failed), tuple(checks), stable, candidate, min_requests,
                       thresholds.alpha)
    short = [f"{side} has {sample.requests} requests (< {min_requests})"
             for side, sample in (("stable", stable), ("candidate", candidate)) if sample.requests < min_requests]
    if short:
        return Verdict("inconclusive", tuple(short), tuple(checks), stable, candidate, min_requests,
                       thresholds.alpha)
    return Verdict("pass", (), tuple(checks), stable, candidate, min_requests, thresholds.alpha)


def _error_rate(stable: SideSample, candidate: SideSample, thresholds: CanaryThresholds) -> Check:
    test = two_proportion_z(stable.failures, stable.requests, candidate.failures, candidate.requests)
    increase = candidate.failure_rate - stable.failure_rate
    worse = test.p_value < thresholds.alpha and increase > thresholds.max_error_rate_increase
    note = (f"error rate {candidate.failure_rate:.2%} vs {stable.failure_rate:.2%} "
            f"(+{increase * 100:.2f} pp > {thresholds.max_error_rate_increase * 100:.2f} pp, "
            f"p={test.p_value:.2g})") if worse else ""
    return Check("error_rate", "fail" if worse else "pass", stable.failure_rate, candidate.failure_rate, increase,
                 thresholds.max_error_rate_increase, test.p_value, note)


def _shift(name: str, stable: Sequence[float], candidate: Sequence[float], margin: float, alpha: float,
           min_values: int, statistic: Any, label: str) -> Check:
    if len(stable) < min_values or len(candidate) < min_values:
        return Check(name, "skipped", None, None, None, margin, None,
                     f"{len(stable)} stable / {len(candidate)} candidate values (< {min_values})")
    base, cand = float(statistic(stable)), float(statistic(candidate))
    increase = relative_increase(base, cand)
    test = mann_whitney_greater(candidate, stable)
    worse = test.p_value < alpha and increase > margin
    note = (f"{name} {label} {cand:.4g} vs {base:.4g} (+{increase:.0%} > {margin:.0%}, "
            f"Mann-Whitney p={test.p_value:.2g})") if worse else ""
    return Check(name, "fail" if worse else "pass", base, cand, increase, margin, test.p_value, note)


__all__ = ["FAILURE_CLASSES", "Check", "LoggedRequest", "Outcome", "SideSample", "Targets", "Verdict",
           "analyze", "side_targets", "split_by_role"]
