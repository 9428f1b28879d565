"""Several `sluice serve` processes on one config, as behind a load balancer: the store migrated first (so they
start side by side), each on its own loopback port, ready before the test runs, stopped after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from sluice.store import migrate_sync
from tests.support.servers import free_port


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `url` answers /health/ready with 200; fail if the process exits or a minute passes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gateway exited during start-up"
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("gateway never became ready")


@contextmanager
def serve_replicas(config: dict[str, Any], folder: Path, count: int) -> Iterator[list[str]]:
    """The base URLs of `count` gateways serving `config` (written to `folder`)."""
    config_file = folder / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(config))
    migrate_sync(config["store"]["url"])
    urls, procs = [], []
    try:
        for _ in range(count):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "sluice", "serve", "--config", str(config_file), "--port", str(port),
                 "--log-level", "warning"], env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
