"""A real Redis for tests: one `redis-server` per test session on a loopback port, one empty db per test.

Fixtures: `redis_server` (session), `redis_url` (a URL to a flushed logical database).
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def start_redis(binary: str) -> tuple[subprocess.Popen[bytes], RedisServer, Path]:
    root = Path(tempfile.mkdtemp(prefix="sluice-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
         "--appendonly", "no", "--databases", "64", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    server = RedisServer("127.0.0.1", port)
    _wait_ready(process, server)
    return process, server, root


def _ping(server: RedisServer) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_ready(process: subprocess.Popen[bytes], server: RedisServer, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _ping(server):
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"redis-server exited with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not answer PING in time")
        time.sleep(0.02)


def stop_redis(process: subprocess.Popen[bytes], root: Path) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    shutil.rmtree(root, ignore_errors=True)


_shared: RedisServer | None = None
_next_db = iter(range(1, 64))


def shared_redis() -> RedisServer:
    """One server per test process; stopped at exit. Skips when redis-server is not installed."""
    global _shared
    if _shared is None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not found on PATH (`.ci/run` installs it with apt)")
        process, server, root = start_redis(binary)
        atexit.register(stop_redis, process, root)
        _shared = server
    return _shared


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return shared_redis()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A URL to an empty logical database (flushed before the test; 63 per session, then reused)."""
    global _next_db
    try:
        db = next(_next_db)
    except StopIteration:
        _next_db = iter(range(1, 64))
        db = next(_next_db)
    with socket.create_connection((redis_server.host, redis_server.port), timeout=5) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 2:
            reply += sock.recv(64)
    yield redis_server.url(db)
