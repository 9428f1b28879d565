"""Request ids: the gateway's are unguessable; the client's `x-request-id` is kept only when it is safe to."""

from __future__ import annotations

import itertools

import pytest

from sluice.records import CLIENT_REQUEST_ID_MAX_CHARS, client_request_id, new_request_id


def test_gateway_ids_are_32_hex_chars_and_share_no_guessable_part() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 and rid == rid.lower() for rid in ids)
    # A process prefix plus a counter (the old scheme) repeats its first half and steps its second by 1.
    assert len({rid[:16] for rid in ids}) == 1000
    assert len({rid[16:] for rid in ids}) == 1000
    steps = {int(later, 16) - int(earlier, 16) for earlier, later in itertools.pairwise(ids)}
    assert len(steps) > 990


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("trace-7f3a", "trace-7f3a"),
        ("  padded id\t", "padded id"),
        ("x" * CLIENT_REQUEST_ID_MAX_CHARS, "x" * CLIENT_REQUEST_ID_MAX_CHARS),
        ("x" * (CLIENT_REQUEST_ID_MAX_CHARS + 1), None),  # ignored whole, never cut
        ("", None),
        ("   ", None),
        (None, None),
        ("line\r\nbreak", None),
        ("nul\x00byte", None),
        ("caf\u00e9", None),  # non-ASCII (a header decoded as latin-1)
    ],
)
def test_a_client_id_is_kept_only_when_short_printable_ascii(header: str | None, kept: str | None) -> None:
    assert client_request_id(header) == kept
