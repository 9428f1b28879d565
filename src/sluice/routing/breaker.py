"""Per-target circuit breaker: closed -> open (failing) -> half-open (probing) -> closed, on plain numbers.

Time is passed in (`now`, monotonic seconds), so the state machine is tested without clocks or sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from sluice.config import CircuitBreakerConfig

_BUCKETS = 10  # the rolling window is kept as this many time buckets


class BreakerState(IntEnum):
    """Also the value of the `sluice_circuit_breaker_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class RollingWindow:
    """Successes and failures over the last `window_s`, kept in `_BUCKETS` time buckets."""

    __slots__ = ("_bucket_s", "_fails", "_oks", "_stamps")

    def __init__(self, window_s: float) -> None:
        self._bucket_s = window_s / _BUCKETS
        self._stamps = [-_BUCKETS] * _BUCKETS  # the bucket number each slot holds
        self._oks = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS

    def add(self, now: float, failed: bool) -> None:
        number = int(now / self._bucket_s)
        slot = number % _BUCKETS
        if self._stamps[slot] != number:  # the slot held an older bucket: reuse it
            self._stamps[slot] = number
            self._oks[slot] = self._fails[slot] = 0
        if failed:
            self._fails[slot] += 1
        else:
            self._oks[slot] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """(successes, failures) in the window ending now."""
        oldest = int(now / self._bucket_s) - _BUCKETS + 1
        oks = fails = 0
        for slot in range(_BUCKETS):
            if self._stamps[slot] >= oldest:
                oks += self._oks[slot]
                fails += self._fails[slot]
        return oks, fails

    def clear(self) -> None:
        self._stamps = [-_BUCKETS] * _BUCKETS


class CircuitBreaker:
    """Opens on `consecutive_failures` in a row, or a `failure_rate` over `window_s` once `min_requests`
    attempts were seen; stays open `cooldown_s`; then lets `half_open_max_requests` probes through at once:
    a probe's success closes it, a probe's failure opens it again.

    Only probes move a half-open breaker; outcomes of attempts started before it opened are ignored then.
    """

    __slots__ = ("_config", "_consecutive", "_on_change", "_opened_at", "_probes", "_window", "state")

    def __init__(self, config: CircuitBreakerConfig,
                 on_change: Callable[[BreakerState], None] | None = None) -> None:
        self._config = config
        self._on_change = on_change
        self._window = RollingWindow(config.window_s)
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes = 0  # probes in flight while half-open
        self.state = BreakerState.CLOSED

    def available(self, now: float) -> bool:
        """Whether a request may go to this target now (takes nothing: see `acquire`)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return now >= self._opened_at + self._config.cooldown_s
        return self._probes < self._config.half_open_max_requests

    def acquire(self, now: float) -> bool:
        """An attempt starts on this target; True when it is a half-open probe (report its outcome)."""
        state = self.state
        if state is BreakerState.CLOSED or not self.available(now):
            return False
        if state is BreakerState.OPEN:
            self._move(BreakerState.HALF_OPEN)
        self._probes += 1
        return True

    def record(self, now: float, failed: bool | None, *, probe: bool) -> None:
        """An attempt ended: `failed` True/False, or None when it says nothing about the target."""
        state = self.state
        if probe and state is BreakerState.HALF_OPEN:
            self._probes -= 1
            if failed is None:
                return
            if failed:
                self._open(now)
            else:
                self._close()
            return
        if failed is None or state is not BreakerState.CLOSED:
            return
        self._window.add(now, failed)
        if not failed:
            self._consecutive = 0
            return
        self._consecutive += 1
        config = self._config
        if self._consecutive >= config.consecutive_failures:
            self._open(now)
            return
        successes, failures = self._window.counts(now)
        total = successes + failures
        if total >= config.min_requests and failures >= config.failure_rate * total:
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._probes = 0
        self._move(BreakerState.OPEN)

    def _close(self) -> None:
        self._consecutive = 0
        self._probes = 0
        self._window.clear()
        self._move(BreakerState.CLOSED)

    def _move(self, state: BreakerState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)

    def retry_in_s(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._config.cooldown_s - now)


class NoBreaker:
    """`circuit_breaker.enabled: false`: always closed, records nothing."""

    __slots__ = ()
    state = BreakerState.CLOSED

    def available(self, now: float) -> bool:
        return True

    def acquire(self, now: float) -> bool:
        return False

    def record(self, now: float, failed: bool | None, *, probe: bool) -> None:
        return None

    def retry_in_s(self, now: float) -> float:
        return 0.0


__all__ = ["BreakerState", "CircuitBreaker", "NoBreaker", "RollingWindow"]
