"""What stops a prompt or an answer: an enforcing guard's block, or a fail-closed guard that could not decide —
and the HTTP errors a refused prompt becomes (400 `content_filter`, 503 `guard_unavailable`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.errors import BackendNotReady, InvalidRequest
from sluice.safety.guards import Direction, Verdict
from sluice.safety.payloads import CONTENT_FILTER


class ContentFiltered(InvalidRequest):
    """A guard refused the prompt."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"The request was refused by the gateway's content guard `{verdict.guard}` "
                         f"(category: {verdict.category}).", param="messages", code=CONTENT_FILTER)


class GuardUnavailable(BackendNotReady):
    """A fail-closed guard could not decide on the prompt: refused, but not judged unsafe (retry later)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"The gateway's content guard `{failure.guard}` could not check the request "
                         f"({failure.reason}), and it is set to refuse what it cannot check.", code="guard_unavailable")


@dataclass(slots=True, frozen=True)
class Failure:
    """A called guard that could not decide, and whether that refuses the text (`on_error: block`, enforced)."""

    guard: str
    layer: str
    direction: Direction
    reason: str
    blocks: bool

    def to_json(self, mode: str) -> dict[str, Any]:
        return {"guard": self.guard, "layer": self.layer, "direction": self.direction, "error": self.reason,
                "outcome": "blocked" if self.blocks else "allowed", "mode": mode}


Outcome = Verdict | Failure | None  # what stopped the text (a block, a fail-closed failure), or nothing


def refuse(outcome: Outcome) -> None:
    """Raise the error a refused prompt becomes; return when nothing stopped it."""
    if isinstance(outcome, Verdict):
        raise ContentFiltered(outcome)
    if isinstance(outcome, Failure):
        raise GuardUnavailable(outcome)


__all__ = ["ContentFiltered", "Failure", "GuardUnavailable", "Outcome", "refuse"]
