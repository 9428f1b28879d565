"""Resuming a stream that broke mid-answer: the same request on a fresh attempt, minus what the client has.

A client that already holds part of an answer cannot be sent a retry from the start. For a deterministic
request (temperature 0 or a fixed seed, one choice) another replica regenerates the same text, so the relay
asks again, checks that the new stream repeats exactly what was delivered, drops that part and relays the
rest: the client sees one unbroken answer. A new stream that says anything else ("diverged") is never
spliced in: the answer ends with an error event, as it would have without resuming.
"""

from __future__ import annotations

from sluice.backends import ChatCompletionRequest, Chunk, CompletionRequest
from sluice.cache import qualifies
from sluice.errors import UpstreamStreamBroken
from sluice.routing import failure_kind

_NON_TEXT_OUTPUT = ("tool_calls", "function_call", "refusal", "audio")


class StreamDiverged(UpstreamStreamBroken):
    """The resumed stream did not repeat the text already sent; nothing of it reached the client."""


def resumable(mode: str, request: ChatCompletionRequest | CompletionRequest) -> bool:
    """Whether `retry.resume_streams` allows resuming this request (`off`, `deterministic` or `always`)."""
    if mode == "off" or (request.n or 1) != 1:
        return False
    return qualifies(mode, request.temperature, request.seed)  # the exact cache's test of "deterministic"


class Delivered:
    """Whether what the client has so far is plain text of one choice (its text is `ctx.text_parts`)."""

    __slots__ = ("text_only",)

    def __init__(self) -> None:
        self.text_only = True  # tool-call fragments, refusals: not resumed (their deltas are not text)

    def add(self, chunk: Chunk) -> None:
        if not self.text_only or not chunk.has_output:
            return
        for choice in chunk.payload.get("choices") or ():
            delta = choice.get("delta") or {}
            if choice.get("index", 0) != 0 or any(delta.get(name) for name in _NON_TEXT_OUTPUT):
                self.text_only = False


class Resume:
    """Filters a resumed stream: chunks repeating the delivered text are dropped, the first new text is cut
    to what the client has not seen, everything after passes unchanged."""

    __slots__ = ("_delivered", "_endpoint", "_seen", "caught_up")

    def __init__(self, delivered: str, endpoint: str) -> None:
        self._delivered = delivered
        self._endpoint = endpoint
        self._seen = ""
        self.caught_up = not delivered

    def admit(self, chunk: Chunk) -> Chunk | None:
        """The chunk to relay (possibly trimmed), or None to drop it; raises StreamDiverged."""
        if self.caught_up:
            return chunk
        ends = chunk.finish_reason is not None or chunk.usage is not None
        if not chunk.has_output:
            if ends:  # the new answer ended before repeating all of the old one
                raise StreamDiverged("the resumed stream ended before repeating the answer already sent")
            return None  # the role chunk and other preambles: the client had them from the first attempt
        seen = self._seen + chunk.text
        known = len(self._delivered)
        if not (self._delivered.startswith(seen) if len(seen) <= known else seen.startswith(self._delivered)):
            raise StreamDiverged("the resumed stream diverged from the answer already sent")
        self._seen = seen
        if len(seen) < known:
            if ends:
                raise StreamDiverged("the resumed stream ended before repeating the answer already sent")
            return None
        self.caught_up = True
        rest = seen[known:]
        if not rest and not ends:
            return None
        return chunk.with_text(rest, self._endpoint)


def may_resume(error: BaseException, delivered: Delivered, mode: str,
               request: ChatCompletionRequest | CompletionRequest) -> bool:
    """A stream that broke after output may be resumed: an upstream failure (not the client leaving, not a bug),
    text-only output so far, and a request `retry.resume_streams` allows (deterministic by default)."""
    return (isinstance(error, Exception) and not isinstance(error, StreamDiverged) and delivered.text_only
            and failure_kind(error) is not None and resumable(mode, request))


def resume_outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    return "diverged" if isinstance(error, StreamDiverged) else "failed"
