"""GPU-hour cost of a self-hosted backend shared out over its tokens: busy time ÷ weighted tokens, trailing window.

The method (docs/cost.md, "Self-hosted: GPU-hours"):
  * the backend's GPUs cost `usd_per_hour` (all of them) whether or not they work;
  * it is *busy* while at least one request is in progress on it (the union of request intervals);
  * over the trailing `window_s`, the cost of a weighted token is  usd_per_s x busy_s ÷ weighted tokens;
  * a finished request costs its weighted tokens (prompt x w_p + cached x w_c + output) at that rate.
So the requests of a window share that window's *busy* GPU cost; idle time is not charged to anyone — it is
reported apart (`idle_s`, Prometheus, `sluice cost report`) so the full bill still adds up. Times are seconds on
one monotonic clock, given by the caller (pure arithmetic, no clock reads here).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque


class GPUMeter:
    """Busy intervals and weighted tokens of one backend over a trailing window."""

    __slots__ = ("_ends", "_starts", "_tokens", "_window_busy_s", "_window_tokens", "busy_total_s",
                 "usd_per_hour", "window_s")

    def __init__(self, usd_per_hour: float, window_s: float = 300.0) -> None:
        if usd_per_hour < 0 or window_s <= 0:
            raise ValueError("usd_per_hour must be >= 0 and window_s > 0")
        self.usd_per_hour = usd_per_hour
        self.window_s = window_s
        self._starts: list[float] = []  # disjoint busy intervals, sorted (so are their ends)
        self._ends: list[float] = []
        self._window_busy_s = 0.0  # total length of the intervals above
        self._tokens: deque[tuple[float, float]] = deque()  # (finished at, weighted tokens)
        self._window_tokens = 0.0
        self.busy_total_s = 0.0  # busy seconds since start (a union: overlapping requests count once)

    @property
    def usd_per_s(self) -> float:
        return self.usd_per_hour / 3600.0

    def record(self, start: float, end: float, weighted_tokens: float) -> float:
        """A request ran on the backend from `start` to `end` (`end` is now): account for it, return its cost."""
        self._forget_before(end - self.window_s)
        self.busy_total_s += self._add_busy(max(start, end - self.window_s), end)
        if weighted_tokens > 0:
            self._tokens.append((end, weighted_tokens))
            self._window_tokens += weighted_tokens
        rate = self.usd_per_weighted_token(end)
        return weighted_tokens * rate if rate is not None else 0.0

    def usd_per_weighted_token(self, now: float) -> float | None:
        """Busy GPU cost of the trailing window ÷ the weighted tokens finished in it; None before any token."""
        self._forget_before(now - self.window_s)
        if self._window_tokens <= 0:
            return None
        return self.usd_per_s * self._window_busy_s / self._window_tokens

    def window_busy_s(self, now: float) -> float:
        self._forget_before(now - self.window_s)
        return self._window_busy_s

    def _add_busy(self, start: float, end: float) -> float:
        """Merge [start, end] into the busy intervals; returns the seconds of busy time it added."""
        if end <= start:
            return 0.0
        first = bisect_left(self._ends, start)  # first interval ending at or after `start`
        last = bisect_right(self._starts, end)  # intervals from `first` to `last` - 1 touch [start, end]
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        covered = sum(e - s for s, e in zip(self._starts[first:last], self._ends[first:last], strict=True))
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]
        added = (end - start) - covered
        self._window_busy_s += added
        return added

    def _forget_before(self, cutoff: float) -> None:
        while self._ends and self._ends[0] <= cutoff:
            self._window_busy_s -= self._ends[0] - self._starts[0]
            del self._starts[0], self._ends[0]
        if self._starts and self._starts[0] < cutoff:
            self._window_busy_s -= cutoff - self._starts[0]
            self._starts[0] = cutoff
        while self._tokens and self._tokens[0][0] <= cutoff:
            self._window_tokens -= self._tokens.popleft()[1]
        if not self._tokens:
            self._window_tokens = 0.0  # no float residue once the window is empty


__all__ = ["GPUMeter"]
