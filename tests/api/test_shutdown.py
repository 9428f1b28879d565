"""SIGTERM under load: stop accepting, drain in-flight streams, flush the log — every completed request has a row."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from tests.support.gateway import upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.replicas import wait_ready
from tests.support.servers import free_port, serve_app

PROMPT = [{"role": "user", "content": "w1 w2 w3 w4 w5 w6 w7 w8"}]


def test_sigterm_mid_load_drains_streams_and_loses_no_row(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    fake = make_openai_upstream(models=["up-model"], token_delay_s=0.02)
    with serve_app(fake) as upstream_url:
        config = upstream_config(upstream_url, db)
        config["store"]["batch_size"] = 7  # several batches, some still queued at SIGTERM
        config["server"] = {"graceful_shutdown_s": 20}
        config_file = tmp_path / "gateway.yaml"
        config_file.write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "sluice", "serve", "--config", str(config_file),
                                 "--port", str(port), "--log-level", "warning"],
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_ready(url, proc)
            completed: list[str] = []
            broken: list[str] = []  # got a 200 but not the whole stream: must never happen
            lock = threading.Lock()
            stop = threading.Event()

            def worker(worker_id: int) -> None:
                with httpx.Client(timeout=30) as client:
                    for n in range(10_000):
                        if stop.is_set():
                            return
                        request_id = f"w{worker_id}-{n}"
                        try:
                            with client.stream("POST", url + "/v1/chat/completions",
                                               headers={"x-request-id": request_id},
                                               json={"model": "m", "messages": PROMPT, "stream": True}) as resp:
                                if resp.status_code != 200:
                                    continue
                                lines = list(resp.iter_lines())
                        except httpx.TransportError:
                            if stop.is_set():
                                return
                            continue  # refused once the server stopped accepting
                        with lock:
                            (completed if "data: [DONE]" in lines[-2:] else broken).append(request_id)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            while len(completed) < 40:  # load is flowing; streams are in flight
                assert proc.poll() is None
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the captured SIGTERM after its graceful shutdown: -15 is a clean exit here
            assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert broken == []
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT client_request_id, status_code FROM request_log").fetchall())
    missing = [rid for rid in completed if rid not in rows]
    assert missing == []
    assert all(rows[rid] == 200 for rid in completed)
    assert len(completed) >= 40
