"""Raw HTTP/1.1 over sockets, for what no HTTP client will do: stall, trickle, hang up mid-body."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

GENEROUS_S = 10.0  # how long a test waits for a server to act on a short (sub-second) timeout


def connect(base_url: str) -> socket.socket:
    """A raw TCP connection to the server at `base_url` (http://host:port)."""
    url = urlsplit(base_url)
    return socket.create_connection((url.hostname, url.port), timeout=GENEROUS_S)


def read_until_closed(sock: socket.socket, deadline_s: float = GENEROUS_S) -> bytes:
    """Everything the gateway sends until it closes the connection; fails if it is still open at the deadline."""
    received = bytearray()
    end = time.monotonic() + deadline_s
    while (left_s := end - time.monotonic()) > 0:
        sock.settimeout(left_s)
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return bytes(received)
        if not piece:
            return bytes(received)
        received += piece
    raise AssertionError(f"the connection is still open after {deadline_s} s")


def trickle_until_closed(sock: socket.socket, data: bytes, every_s: float = 0.05) -> bytes:
    """Send `data` a byte at a time, `every_s` apart (waiting on the socket, so a close ends the wait), over and
    over; returns what the gateway sent once it closed the connection. Fails after `GENEROUS_S`."""
    received = bytearray()
    end = time.monotonic() + GENEROUS_S
    index = 0
    while time.monotonic() < end:
        try:
            sock.send(data[index % len(data):index % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return bytes(received)
        index += 1
        sock.settimeout(every_s)
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return bytes(received)
        if not piece:
            return bytes(received)
        received += piece
    raise AssertionError(f"the connection is still open after {GENEROUS_S} s of trickling")


def status_and_body(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body) if body else None
