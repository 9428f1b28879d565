"""Run a whole workload on a virtual clock: requests with arrival times in, exact per-request timings out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sluice.sim.clock import VirtualClock
from sluice.sim.cost import StepCost
from sluice.sim.engine import EngineCore, EngineRequest, EngineStep, RequestTiming
from sluice.sim.scheduler import SchedulerConfig


@dataclass(slots=True, frozen=True)
class SimulationReport:
    """Timings of every request (in the order given) and, when asked for, every step."""

    requests: tuple[RequestTiming, ...]
    steps: tuple[EngineStep, ...]
    num_steps: int
    num_preemptions: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.requests)

    @property
    def output_throughput_tok_s(self) -> float:
        return self.output_tokens / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def request_throughput_s(self) -> float:
        return len(self.requests) / self.duration_s if self.duration_s > 0 else 0.0

    def timing(self, request_id: str) -> RequestTiming:
        for timing in self.requests:
            if timing.request_id == request_id:
                return timing
        raise KeyError(request_id)


def simulate(cost: StepCost, requests: Iterable[EngineRequest], config: SchedulerConfig | None = None,
             *, keep_steps: bool = False) -> SimulationReport:
    """Feed `requests` in at their `arrival_s` (None: 0) and step the engine until all are done.

    A request that arrives while a step runs joins at the next step boundary, as in a real engine.
    """
    core = EngineCore(cost, config)
    pending = sorted(enumerate(requests), key=lambda item: (item[1].arrival_s or 0.0, item[0]))
    order = {request.request_id: position for position, request in pending}
    clock = VirtualClock((pending[0][1].arrival_s or 0.0) if pending else 0.0)
    start_s = clock.now()
    timings: list[RequestTiming] = []
    steps: list[EngineStep] = []
    num_steps = 0
    next_arrival = 0
    while next_arrival < len(pending) or core.has_work():
        while next_arrival < len(pending) and (pending[next_arrival][1].arrival_s or 0.0) <= clock.now():
            request = pending[next_arrival][1]
            core.add_request(request, request.arrival_s or 0.0)
            next_arrival += 1
        if not core.has_work():
            clock.advance_to(pending[next_arrival][1].arrival_s or 0.0)
            continue
        step = core.step(clock.now())
        num_steps += 1
        if keep_steps:
            steps.append(step)
        timings.extend(step.finished)
        clock.advance_to(step.end_s)
    timings.sort(key=lambda timing: order[timing.request_id])
    return SimulationReport(tuple(timings), tuple(steps), num_steps, core.num_preemptions_total,
                            start_s, clock.now())
