"""Generated text as it streams out of a local runtime: text deltas from a growing token list, cut at stop sequences."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class IncrementalDetokenizer:
    """Text deltas from a growing token list without re-decoding it all, and never half a character."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # decoding from a few tokens back keeps word-initial spaces right
        self._read = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        full_text = self._decode(self._ids[self._prefix:])
        if len(full_text) <= len(prefix_text) or full_text.endswith("\ufffd"):
            return ""  # a multi-byte character is still incomplete
        self._prefix, self._read = self._read, len(self._ids)
        return full_text[len(prefix_text):]

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        return self._decode(self._ids[self._prefix:])[len(prefix_text):]


class StopScanner:
    """Cuts the text at the first stop sequence, holding back a tail that might begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop sequence was reached)."""
        buffer = self._held + text
        hits = [index for index in (buffer.find(stop) for stop in self._stops) if index >= 0]
        if hits:
            self._held = ""
            return buffer[:min(hits)], True
        keep = max((n for stop in self._stops for n in range(1, len(stop)) if buffer.endswith(stop[:n])),
                   default=0)
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[:len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
