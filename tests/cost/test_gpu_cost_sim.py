"""The in-process simulator backend is priced by its GPUs' catalog price, shared out over its tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.store import create_engine, request_log
from tests.support.gateway import run_gateway

H100_SXM_USD_PER_HOUR = 2.99  # gpus.yaml: cheapest on-demand h100-sxm offer


def test_sim_requests_are_charged_the_busy_gpu_time_they_caused(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    config = {
        "store": {"url": f"sqlite:///{db}", "flush_interval_s": 0.05},
        "backends": {"h100": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 4096}},
        "models": {"llama": {"targets": [{"backend": "h100", "model": "llama-3.1-8b"}]}},
    }
    with run_gateway(config) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(
            model="llama", messages=[{"role": "user", "content": "Tell me about sluice gates."}], max_tokens=32,
            extra_headers={"x-request-id": "sim-1"})
        header_cost = float(raw.headers["x-sluice-cost-usd"])
        text = httpx.get(gw.url + "/metrics").text
    metrics = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert metrics[("sluice_gpu_cost_usd_per_hour", (("backend", "h100"),))] == H100_SXM_USD_PER_HOUR
    busy_s = metrics[("sluice_gpu_busy_seconds_total", (("backend", "h100"),))]

    async def read() -> list:  # type: ignore[type-arg]
        engine = create_engine(f"sqlite:///{db}")
        try:
            return await request_log.recent(engine, limit=10)
        finally:
            await engine.dispose()

    (row,) = [record for record in asyncio.run(read()) if record.client_request_id == "sim-1"]
    # A lone request pays for exactly the busy time it caused: from leaving the queue to its last token.
    assert busy_s > 0
    assert header_cost == pytest.approx(H100_SXM_USD_PER_HOUR / 3600 * busy_s, rel=1e-6)
    assert row.cost_usd == pytest.approx(header_cost, abs=1e-10)
    assert row.upstream_s <= busy_s <= row.e2e_s - row.queue_s
