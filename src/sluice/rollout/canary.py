"""The progressive canary as a state machine over plain data: where a run is, and what a verdict does to it.

    running --pass--> next step (running) ... --pass on the last step--> promoted
    running --fail--> rolled_back
    running --inconclusive--> same step, window extended (up to max_extensions), then on_exhausted:
                              rollback -> rolled_back | advance -> as a pass | hold -> held (waits for a person)
    running | held --promote / rollback by an operator--> promoted | rolled_back

Each step's window starts when its weight took effect and ends `interval_s` later (more when extended);
it is analysed `log_grace_s` after it ends, so that every replica's request log has flushed. A step at
100 % has no stable traffic: its candidate is compared with what stable served earlier in the canary, on
errors (and cost) only — latency under one load says nothing about latency under another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from sluice.config import CanaryConfig
from sluice.rollout.analysis import Outcome

CanaryState = Literal["running", "held", "promoted", "rolled_back"]
TransitionKind = Literal["advance", "promote", "rollback", "extend", "hold"]
ACTIVE_STATES: tuple[CanaryState, ...] = ("running", "held")

_EVENTS: dict[TransitionKind, str] = {"advance": "canary.step", "promote": "canary.promoted",
                                      "rollback": "canary.rolled_back", "extend": "canary.extended",
                                      "hold": "canary.held"}


@dataclass(slots=True, frozen=True)
class CanaryRun:
    model: str
    settings: CanaryConfig
    started_at: float
    step_started_at: float
    actor: str
    reason: str | None = None
    state: CanaryState = "running"
    step_index: int = 0
    extensions: int = 0
    finished_at: float | None = None
    id: int | None = None  # set once stored
    revision: int = 0  # the store's compare-and-set counter

    @property
    def weight(self) -> float:
        return self.settings.steps[self.step_index]

    @property
    def last_step(self) -> bool:
        return self.step_index == len(self.settings.steps) - 1

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def window_end(self) -> float:
        return self.step_started_at + self.settings.interval_s * (self.extensions + 1)

    @property
    def due_at(self) -> float:
        """When the current window is analysed."""
        return self.window_end + self.settings.log_grace_s

    def baseline_window(self) -> tuple[float, float]:
        """Where stable's sample comes from: this step's window, or — at 100 %, where stable gets no
        traffic — everything stable served since the canary started, up to this step."""
        if self.weight >= 100:
            return self.started_at, self.step_started_at
        return self.step_started_at, self.window_end

    def finish(self, state: CanaryState, now: float) -> CanaryRun:
        return replace(self, state=state, finished_at=now)


@dataclass(slots=True, frozen=True)
class Transition:
    kind: TransitionKind
    run: CanaryRun  # the run after the transition
    weight: float | None  # the candidate weight to set; None: the deployment stays as it is

    @property
    def event(self) -> str:
        """The webhook event name."""
        return _EVENTS[self.kind]


def decide(run: CanaryRun, verdict: Outcome, now: float) -> Transition:
    """What a verdict on the current window does to a running canary."""
    if run.state != "running":
        raise ValueError(f"canary {run.id} of {run.model} is {run.state}, not running")
    if verdict == "fail":
        return Transition("rollback", run.finish("rolled_back", now), 0.0)
    if verdict == "pass":
        return _advance(run, now)
    if run.extensions < run.settings.max_extensions:
        return Transition("extend", replace(run, extensions=run.extensions + 1), None)
    exhausted = run.settings.on_exhausted
    if exhausted == "advance":
        return _advance(run, now)
    if exhausted == "hold":
        return Transition("hold", replace(run, state="held"), None)
    return Transition("rollback", run.finish("rolled_back", now), 0.0)


def _advance(run: CanaryRun, now: float) -> Transition:
    if run.last_step:
        return Transition("promote", run.finish("promoted", now), None)
    step = run.step_index + 1
    moved = replace(run, step_index=step, step_started_at=now, extensions=0)
    return Transition("advance", moved, moved.weight)


__all__ = ["ACTIVE_STATES", "CanaryRun", "CanaryState", "Transition", "TransitionKind", "decide"]
