"""Request ids: the gateway's own (random, unguessable) and the client's `x-request-id` (a correlation field)."""

from __future__ import annotations

import secrets

CLIENT_REQUEST_ID_MAX_CHARS = 128  # longer client ids are ignored, not cut: a cut id would correlate wrongly


def new_request_id() -> str:
    """A fresh gateway request id: 32 hex characters (128 random bits), the shape of a uuid4 hex."""
    # Random, not a counter: ids are shown in every response, so a sequential one lets a caller
    # predict (and pre-empt) the ids of other callers' requests.
    return secrets.token_hex(16)


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
