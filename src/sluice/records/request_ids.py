"""Request ids: the gateway's own (random, unguessable) and the client's `x-request-id` (a correlation field)."""

from __future__ import annotations

import os
import threading

CLIENT_REQUEST_ID_MAX_CHARS = 128  # longer client ids are ignored, not cut: a cut id would correlate wrongly


class _RandomIds:
    """128-bit ids from the OS's CSPRNG, read 256 at a time: one `os.urandom` syscall per id cost 2 % of a
    request's gateway CPU (py-spy under wrk); slicing a pre-read block keeps every id unguessable."""

    _IDS_PER_READ = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()  # ids are made on the event loop, but uniqueness must not rest on that
        self._block = ""
        self._next = 0

    def new(self) -> str:
        with self._lock:
            if self._next >= len(self._block):
                self._block, self._next = os.urandom(16 * self._IDS_PER_READ).hex(), 0
            start, self._next = self._next, self._next + 32
            return self._block[start:start + 32]


_ids = _RandomIds()


def new_request_id() -> str:
    """A fresh gateway request id: 32 hex characters (128 random bits), the shape of a uuid4 hex."""
    # Random, not a counter: ids are shown in every response, so a sequential one lets a caller
    # predict (and pre-empt) the ids of other callers' requests.
    return _ids.new()


def client_request_id(header: str | None) -> str | None:
    """The client's `x-request-id` as kept and echoed: 1-128 printable ASCII characters, else `None`.

    Surrounding spaces are stripped. An id with any other character (control characters, non-ASCII) or
    longer than `CLIENT_REQUEST_ID_MAX_CHARS` is ignored whole, so what is stored is what the client sent.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    if not value or len(value) > CLIENT_REQUEST_ID_MAX_CHARS:
        return None
    if not (value.isascii() and value.isprintable()):
        return None
    return value


__all__ = ["CLIENT_REQUEST_ID_MAX_CHARS", "client_request_id", "new_request_id"]
