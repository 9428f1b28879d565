"""How one request's guards run: split by direction, local or called, enforced or monitor, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.safety.build import is_called
from sluice.safety.guards import CalledGuard, Guard

AnyGuard = Guard | CalledGuard


@dataclass(slots=True, frozen=True)
class Plan:
    """One request's guards, split the way they run (built once per distinct guard list, then reused)."""

    header: str  # the guards' names, in order (the response header)
    local_in: list[Guard]
    before: list[CalledGuard]  # input, enforced, awaited before the upstream call
    during: list[CalledGuard]  # input, enforced, beside the upstream call; the answer waits for them
    trailing: list[CalledGuard]  # input, monitor mode: beside the call, never holding the answer
    each_out: list[Guard]  # output, local, at every streamed chunk
    strided_out: list[Guard]  # output, local, every `every_chars` of a stream
    called_out: list[CalledGuard]  # output, called, enforced
    monitor_out: list[CalledGuard]  # output, called, monitor mode: once, on the whole answer
    mask_out: list[Guard]  # output, local, enforcing `mask`: streamed text is masked before it leaves

    @classmethod
    def of(cls, guards: list[AnyGuard]) -> Plan:
        def split(direction: str) -> tuple[list[Any], list[Any]]:
            mine = [guard for guard in guards if direction in guard.directions]
            return [g for g in mine if not is_called(g)], [g for g in mine if is_called(g)]

        local_in, called_in = split("input")
        local_out, called_out = split("output")
        return cls(",".join(guard.name for guard in guards), local_in,
                   [g for g in called_in if g.mode == "enforce" and g.when == "before"],
                   [g for g in called_in if g.mode == "enforce" and g.when == "during"],
                   [g for g in called_in if g.mode != "enforce"],
                   [g for g in local_out if not g.every_chars], [g for g in local_out if g.every_chars],
                   [g for g in called_out if g.mode == "enforce"], [g for g in called_out if g.mode != "enforce"],
                   [g for g in local_out if g.action == "mask" and g.mode == "enforce"])

    @property
    def inputs(self) -> bool:
        return bool(self.local_in or self.before or self.during or self.trailing)

    @property
    def outputs(self) -> bool:
        return bool(self.each_out or self.strided_out or self.called_out or self.monitor_out)


__all__ = ["AnyGuard", "Plan"]
