"""Running figures of a run in progress (the progress bar's req/s, tok/s and latency), updated per result."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from sluice.loadtest.metrics import MS_PER_S, RequestResult

RECENT = 200  # the latency shown is the median of the last this many successes: current, not since the start


@dataclass(slots=True)
class LiveStats:
    completed: int = 0
    failed: int = 0
    output_tokens: int = 0
    recent_ttft_s: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    recent_e2el_s: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def record(self, result: RequestResult) -> None:
        if not result.success:
            self.failed += 1
            return
        self.completed += 1
        self.output_tokens += result.output_tokens
        self.recent_ttft_s.append(result.ttft_s)
        self.recent_e2el_s.append(result.e2e_s)

    def line(self, elapsed_s: float | None) -> str:
        """`3.2 req/s · 410 tok/s · TTFT p50 85 ms · E2EL p50 1.2 s · 2 failed` (what is known so far)."""
        parts = []
        if elapsed_s:
            parts += [f"{self.completed / elapsed_s:.1f} req/s", f"{self.output_tokens / elapsed_s:.0f} tok/s"]
        if self.recent_ttft_s:
            parts.append(f"TTFT p50 {statistics.median(self.recent_ttft_s) * MS_PER_S:.0f} ms")
            parts.append(f"E2EL p50 {_seconds(statistics.median(self.recent_e2el_s))}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return " · ".join(parts)


def _seconds(value_s: float) -> str:
    return f"{value_s * MS_PER_S:.0f} ms" if value_s < 1 else f"{value_s:.2f} s"
