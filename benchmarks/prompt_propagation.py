"""How long a prompt label move takes to reach another replica: two `sluice serve` processes on one Redis and one
SQLite store; the label is moved through replica A and replica B is asked, as fast as it answers, until it
renders the new version. Reports the time from the move's response to B's first answer with the new version.

    .venv/bin/python benchmarks/prompt_propagation.py [--moves 50]

Needs `redis-server` on the PATH (Debian's `redis-server` package; `.ci/run` installs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.gateway import upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.redis import start_redis
from tests.support.servers import free_port, serve_app

from sluice.stats import percentile
from sluice.store import migrate_sync

BODY = {"model": "m", "max_tokens": 4, "prompt": {"name": "greet", "label": "production", "variables": {"who": "A"}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=50, help="label moves to time")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    redis, server, redis_dir = start_redis(binary)
    root = Path(tempfile.mkdtemp(prefix="sluice-prompt-propagation-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with serve_app(make_openai_upstream(models=["up-model"])) as upstream_url:
            config = upstream_config(upstream_url, root / "store.db", state={"url": server.url(0)})
            config_file = root / "gateway.yaml"
            config_file.write_text(yaml.safe_dump(config))
            migrate_sync(config["store"]["url"])
            urls = []
            for _ in range(2):
                port = free_port()
                urls.append(f"http://127.0.0.1:{port}")
                procs.append(subprocess.Popen([sys.executable, "-m", "sluice", "serve", "--config", str(config_file),
                                               "--port", str(port), "--log-level", "warning"]))
            with httpx.Client(timeout=10) as client:
                for url in urls:
                    _ready(client, url)
                report(measure(client, *urls, args.moves))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def measure(client: httpx.Client, first: str, second: str, moves: int) -> tuple[list[float], list[int]]:
    for template in ("Hello {{ who }}.", "Goodbye {{ who }}."):
        client.post(f"{first}/admin/prompts/greet/versions", json={"template": template, "variables": ["who"]})
    client.put(f"{first}/admin/prompts/greet/labels/production", json={"version": 1})
    delays, stale = [], []
    for move in range(moves):
        target = 2 if move % 2 == 0 else 1
        assert _used(client, second) == f"greet@{3 - target}"  # B keeps the version the label names now
        client.put(f"{first}/admin/prompts/greet/labels/production", json={"version": target})
        moved_at, asked = time.perf_counter(), 0
        while _used(client, second) != f"greet@{target}":
            asked += 1
        delays.append(time.perf_counter() - moved_at)
        stale.append(asked)
    return delays, stale


def report(found: tuple[list[float], list[int]]) -> None:
    delays, stale = found
    ms = [delay * 1000 for delay in delays]
    print(f"{len(ms)} label moves through replica A, replica B asked until it rendered the new version")
    print(f"move -> B renders it: P50 {percentile(ms, 50):.2f} ms, P99 {percentile(ms, 99):.2f} ms, "
          f"max {max(ms):.2f} ms (includes B's own request time)")
    print(f"answers from B with the old version after the move returned: {sum(stale)} in all, "
          f"{sum(1 for count in stale if count)} of {len(stale)} moves had any")


def _used(client: httpx.Client, url: str) -> str:
    response = client.post(url + "/v1/chat/completions", json=BODY)
    response.raise_for_status()
    return response.headers["x-sluice-prompt"]


def _ready(client: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get(url + "/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} never became ready")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
