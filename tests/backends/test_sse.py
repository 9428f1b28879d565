"""`iter_sse`: WHATWG event-stream parsing of upstream bytes, however the network cut them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson
import pytest

from sluice.backends.sse import DONE, SSEEvent, encode_data, iter_sse


async def _blocks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def parse(*parts: bytes) -> list[SSEEvent]:
    return [event async for event in iter_sse(_blocks(parts))]


async def test_each_data_line_followed_by_a_blank_line_is_one_message_event() -> None:
    events = await parse(b"data: first\n", b"\n", b"data: second\n", b"\n")

    assert events == [SSEEvent("message", "first"), SSEEvent("message", "second")]


async def test_data_lines_of_one_event_are_joined_with_newlines() -> None:
    events = await parse(b"data: line one\ndata: line two\ndata:\ndata: four\n\n")

    assert events == [SSEEvent("message", "line one\nline two\n\nfour")]


async def test_comments_and_keep_alives_are_skipped() -> None:
    events = await parse(b": keep-alive\n\n", b":\n", b"data: x\n: in the middle\n\n", b": ping\n\n")

    assert events == [SSEEvent("message", "x")]


async def test_crlf_line_endings_are_accepted() -> None:
    events = await parse(b"event: delta\r\ndata: {\"a\": 1}\r\n\r\ndata: [DONE]\r\n\r\n")

    assert events == [SSEEvent("delta", '{"a": 1}'), SSEEvent("message", "[DONE]")]


async def test_event_names_are_kept_and_reset_after_each_event() -> None:
    events = await parse(b"event: content_block_delta\ndata: 1\n\ndata: 2\n\n")

    assert events == [SSEEvent("content_block_delta", "1"), SSEEvent("message", "2")]


async def test_final_event_without_the_closing_blank_line_is_still_yielded() -> None:
    assert await parse(b"data: a\n\n", b"data: last\n") == [SSEEvent("message", "a"), SSEEvent("message", "last")]
    assert await parse(b"data: no newline at all") == [SSEEvent("message", "no newline at all")]


async def test_only_the_single_space_after_the_colon_is_removed() -> None:
    events = await parse(b"data:tight\n\n", b"data:  two spaces\n\n")

    assert events == [SSEEvent("message", "tight"), SSEEvent("message", " two spaces")]


async def test_id_retry_and_unknown_fields_are_ignored_and_blank_events_are_not_dispatched() -> None:
    events = await parse(b"id: 7\nretry: 1000\nfoo: bar\n\n", b"\n\n", b"id: 8\ndata: kept\n\n")

    assert events == [SSEEvent("message", "kept")]


@pytest.mark.parametrize("cut", [1, 5, 7, 8, 13, 30])
async def test_events_cut_anywhere_across_network_reads_parse_the_same(cut: int) -> None:
    stream = b'data: {"text": "caf\xc3\xa9"}\r\n\r\n: ping\r\n\r\ndata: [DONE]\r\n\r\n'
    pieces = [stream[i:i + cut] for i in range(0, len(stream), cut)]

    assert await parse(*pieces) == [SSEEvent("message", '{"text": "café"}'), SSEEvent("message", "[DONE]")]


async def test_a_utf8_byte_order_mark_at_the_start_is_dropped() -> None:
    assert await parse(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("message", "x")]


async def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert await parse(b"data: \xff\n\n") == [SSEEvent("message", "\ufffd")]


async def test_an_event_larger_than_any_read_is_reassembled() -> None:
    data = "y" * 300_000
    raw = f"data: {data}\n\n".encode()

    events = await parse(*(raw[i:i + 4096] for i in range(0, len(raw), 4096)))

    assert events == [SSEEvent("message", data)]


async def test_encoded_events_round_trip() -> None:
    payload = {"choices": [{"delta": {"content": "line\nbreak"}}]}

    events = await parse(encode_data(payload), DONE)

    assert [event.data for event in events] == [orjson.dumps(payload).decode(), "[DONE]"]


async def test_events_that_arrive_in_one_read_are_marked_buffered_except_the_last() -> None:
    events = await parse(b"data: a\n\ndata: b\n\ndata: c\n\n", b"data: d\n\n")

    assert [(e.data, e.more_buffered) for e in events] == [("a", True), ("b", True), ("c", False), ("d", False)]
