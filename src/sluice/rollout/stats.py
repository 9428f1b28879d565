"""The statistics of canary analysis: one-sided tests that ask "is the candidate worse than stable?".

scipy is imported on first use, so a gateway that never analyses a canary never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sluice.stats import percentile


@dataclass(slots=True, frozen=True)
class TestResult:
    statistic: float  # z for the proportion test, U for Mann-Whitney
    p_value: float  # one-sided: small means the candidate is worse


def two_proportion_z(stable_failures: int, stable_n: int, candidate_failures: int, candidate_n: int) -> TestResult:
    """Pooled two-proportion z-test, H1: the candidate's failure rate is higher than stable's.

    With no variance at all (both sides all-success or all-failure) there is no evidence: p = 1.
    """
    if stable_n <= 0 or candidate_n <= 0:
        raise ValueError("both samples need at least one request")
    pooled = (stable_failures + candidate_failures) / (stable_n + candidate_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / stable_n + 1 / candidate_n))
    if se == 0:
        return TestResult(0.0, 1.0)
    z = (candidate_failures / candidate_n - stable_failures / stable_n) / se
    return TestResult(z, _normal_sf(z))


def mann_whitney_greater(candidate: Sequence[float], stable: Sequence[float]) -> TestResult:
    """Mann-Whitney U test, H1: candidate values tend to be larger (slower, costlier) than stable's.

    Identical samples (every value tied) carry no evidence: p = 1.
    """
    if not candidate or not stable:
        raise ValueError("both samples need at least one value")
    if min(candidate) == max(candidate) == min(stable) == max(stable):
        return TestResult(len(candidate) * len(stable) / 2, 1.0)
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(candidate, stable, alternative="greater")
    return TestResult(float(result.statistic), float(result.pvalue))


def load_scipy() -> None:
    """Import what the tests need (seconds on a busy machine), so the first analysis does not wait for it."""
    import scipy.stats  # noqa: F401


def relative_increase(stable: float, candidate: float) -> float:
    """(candidate − stable) / stable; infinite when only the candidate is above zero."""
    if stable == 0:
        return 0.0 if candidate <= 0 else math.inf
    return (candidate - stable) / stable


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal (erfc keeps precision far in the tail)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


__all__ = ["TestResult", "load_scipy", "mann_whitney_greater", "percentile", "relative_increase", "two_proportion_z"]
