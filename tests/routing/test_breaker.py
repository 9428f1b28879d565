"""The circuit breaker as a state machine over explicit times: open, cool down, probe, close or reopen."""

from __future__ import annotations

from sluice.config import CircuitBreakerConfig
from sluice.routing import BreakerState, CircuitBreaker
from sluice.routing.breaker import RollingWindow


def breaker(**settings: float) -> tuple[CircuitBreaker, list[BreakerState]]:
    changes: list[BreakerState] = []
    return CircuitBreaker(CircuitBreakerConfig.model_validate(settings), on_change=changes.append), changes


def fail(b: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        b.record(now, True, probe=False)


def test_opens_after_n_consecutive_failures_and_refuses_traffic() -> None:
    b, changes = breaker(consecutive_failures=3, cooldown_s=10)

    fail(b, 100.0, 2)
    assert b.state is BreakerState.CLOSED and b.available(100.0)
    fail(b, 100.0)

    assert b.state is BreakerState.OPEN
    assert not b.available(100.0) and not b.available(109.99)
    assert b.retry_in_s(105.0) == 5.0
    assert changes == [BreakerState.OPEN]


def test_a_success_resets_the_consecutive_count() -> None:
    b, _ = breaker(consecutive_failures=3, min_requests=1000)

    fail(b, 1.0, 2)
    b.record(1.0, False, probe=False)
    fail(b, 1.0, 2)

    assert b.state is BreakerState.CLOSED


def test_opens_on_the_failure_rate_once_the_window_has_enough_requests() -> None:
    b, _ = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=10, window_s=30)

    for i in range(9):  # alternate: never more than one failure in a row, 50 % failures
        b.record(1.0, i % 2 == 0, probe=False)
    assert b.state is BreakerState.CLOSED  # 9 requests: under the minimum
    b.record(1.0, False, probe=False)
    assert b.state is BreakerState.CLOSED  # 10 requests, 5 failures ... checked on a failure
    b.record(1.0, True, probe=False)

    assert b.state is BreakerState.OPEN


def test_failures_older_than_the_window_no_longer_count() -> None:
    b, _ = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, window_s=10)
    for failed in (True, False, True):  # 3 requests: under the minimum
        b.record(0.0, failed, probe=False)

    b.record(20.0, False, probe=False)
    b.record(20.0, True, probe=False)  # with the old ones it would be 3 failures in 5

    assert b.state is BreakerState.CLOSED


def test_after_the_cooldown_only_a_limited_number_of_probes_go_through() -> None:
    b, changes = breaker(consecutive_failures=1, cooldown_s=5, half_open_max_requests=2)
    fail(b, 0.0)

    assert b.available(5.0)
    assert b.acquire(5.0) is True
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire(5.0) is True
    assert not b.available(5.0)  # two probes in flight: the limit
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_a_probe_success_closes_it() -> None:
    b, changes = breaker(consecutive_failures=1, cooldown_s=5)
    fail(b, 0.0)
    probe = b.acquire(6.0)

    b.record(6.5, False, probe=probe)

    assert b.state is BreakerState.CLOSED and b.available(6.5)
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_probe_failure_opens_it_again_for_another_cooldown() -> None:
    b, changes = breaker(consecutive_failures=1, cooldown_s=5)
    fail(b, 0.0)
    probe = b.acquire(6.0)

    b.record(7.0, True, probe=probe)

    assert b.state is BreakerState.OPEN
    assert not b.available(11.9) and b.available(12.0)
    assert changes[-1] is BreakerState.OPEN


def test_a_probe_without_a_verdict_frees_its_slot() -> None:
    b, _ = breaker(consecutive_failures=1, cooldown_s=5, half_open_max_requests=1)
    fail(b, 0.0)
    probe = b.acquire(6.0)
    assert not b.available(6.0)

    b.record(6.1, None, probe=probe)  # e.g. the client went away

    assert b.state is BreakerState.HALF_OPEN and b.available(6.1)


def test_outcomes_of_attempts_started_before_it_opened_do_not_move_it() -> None:
    b, _ = breaker(consecutive_failures=1, cooldown_s=5)
    fail(b, 0.0)
    b.acquire(6.0)

    b.record(6.0, False, probe=False)  # a long stream that began while it was closed
    assert b.state is BreakerState.HALF_OPEN
    b.record(6.0, True, probe=False)
    assert b.state is BreakerState.HALF_OPEN


def test_no_verdicts_never_trip_it() -> None:
    b, _ = breaker(consecutive_failures=1, min_requests=1)

    for _ in range(50):
        b.record(1.0, None, probe=False)

    assert b.state is BreakerState.CLOSED


def test_closing_forgets_the_old_window() -> None:
    b, _ = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, cooldown_s=1)
    for _ in range(4):
        b.record(0.0, True, probe=False)
    assert b.state is BreakerState.OPEN
    b.record(2.0, False, probe=b.acquire(2.0))

    b.record(2.0, True, probe=False)

    assert b.state is BreakerState.CLOSED


def test_rolling_window_counts_only_recent_buckets() -> None:
    window = RollingWindow(10.0)
    window.add(0.5, True)
    window.add(5.0, False)
    window.add(9.9, True)

    assert window.counts(9.9) == (1, 2)
    assert window.counts(10.5) == (1, 1)  # the 0-1 s bucket left the window
    assert window.counts(30.0) == (0, 0)
