"""Stream timing at one place, with vLLM `bench serve` definitions of TTFT, ITL, TPOT and E2E."""

from __future__ import annotations


class StreamTimer:
    """Records output-chunk arrival times (perf_counter seconds) relative to the request's arrival."""

    __slots__ = ("arrival", "first_output", "gaps", "last_output")

    def __init__(self, arrival: float) -> None:
        self.arrival = arrival
        self.first_output: float | None = None
        self.last_output: float | None = None
        self.gaps: list[float] = []

    def on_output(self, now: float) -> None:
        if self.first_output is None:
            self.first_output = now
        else:
            self.gaps.append(now - self.last_output)  # type: ignore[operator]
        self.last_output = now

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_output is None else self.first_output - self.arrival


def tpot_s(e2e_s: float, ttft_s: float | None, completion_tokens: int | None) -> float | None:
    """Time per output token excluding the first: (E2E - TTFT) / (tokens - 1); None below two tokens."""
    if ttft_s is None or not completion_tokens or completion_tokens < 2:
        return None
    return (e2e_s - ttft_s) / (completion_tokens - 1)
