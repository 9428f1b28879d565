"""The simulator's ground-truth timings (`--record-timings`, `/sim/timings`): what is stamped, where, and that the
bench client's own measurement of the same request is bounded by them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
from typer.testing import CliRunner

from sluice.cli import app as cli_app
from sluice.loadtest.client import BenchTarget, send_request
from sluice.loadtest.datasets import BenchRequest
from sluice.loadtest.metrics import RequestResult
from sluice.sim import FaultPlan, MonotonicClock, ServedTimings, TimingLog, make_server, parse_timings
from tests.sim.support import MODEL, make_simulator

NS_PER_S = 1e9


@contextlib.asynccontextmanager
async def sim_server(timings: TimingLog | None, faults: FaultPlan | None = None) -> AsyncIterator[str]:
    """The CLI's server (`make_server`, connection gate included) on a real clock, in this test's event loop.

    The socket listens before the server starts, so requests simply wait in the backlog until it serves.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = make_server(make_simulator(clock=MonotonicClock(), faults=faults), port=port, log_level="warning",
                         timings=timings)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def stream(url: str, request_id: str, output_len: int = 8, *,
                 endpoint: str = "/v1/chat/completions") -> RequestResult:
    target = BenchTarget(base_url=url, model=MODEL, endpoint=endpoint)
    async with aiohttp.ClientSession() as session:
        return await send_request(session, target, BenchRequest("time me", 3, output_len), 0.0, request_id=request_id)


async def records(url: str) -> list[ServedTimings]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/sim/timings") as response:
        assert response.status == 200
        return parse_timings(await response.json())


async def test_a_streamed_request_is_recorded_under_its_request_id() -> None:
    async with sim_server(TimingLog()) as url:
        result = await stream(url, "req-42", output_len=8)
        [record] = await records(url)
    assert result.success
    assert record.request_id == "req-42" and record.status == 200
    assert record.response_id is not None and record.response_id.startswith("chatcmpl-")
    assert len(record.token_ns) == 8  # the role delta and the usage chunk carry no text: not tokens
    assert record.received_ns is not None and record.received_ns <= record.arrived_ns < record.token_ns[0]
    assert list(record.token_ns) == sorted(record.token_ns)
    assert record.last_frame_ns is not None and record.end_ns is not None
    assert record.token_ns[-1] < record.last_frame_ns <= record.end_ns
    assert record.ttft_s is not None and record.e2e_s is not None and len(record.itl_s) == 7


async def test_the_server_truth_bounds_the_bench_clients_measurement() -> None:
    async with sim_server(TimingLog()) as url:
        results = await asyncio.gather(*(stream(url, f"r{i}", output_len=6 + i) for i in range(6)))
        served = {record.request_id: record for record in await records(url)}
    for index, client in enumerate(results):
        server = served[f"r{index}"]
        assert client.success and server.ttft_s is not None and server.e2e_s is not None
        # Causality on one clock: the client starts before the server reads and reads after the server writes.
        assert client.start_s * NS_PER_S <= server.received_ns <= server.arrived_ns  # type: ignore[operator]
        assert (client.start_s + client.ttft_s) * NS_PER_S >= server.token_ns[0]
        assert (client.start_s + client.e2e_s) * NS_PER_S >= server.last_frame_ns  # type: ignore[operator]
        assert client.ttft_s >= server.ttft_s and client.e2e_s >= server.e2e_s
        assert len(client.itl_s) == len(server.itl_s) == client.output_tokens - 1


async def test_completions_and_whole_answers_are_recorded_too() -> None:
    async with sim_server(TimingLog()) as url:
        await stream(url, "text", output_len=5, endpoint="/v1/completions")
        async with aiohttp.ClientSession() as session:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "whole"}], "max_tokens": 5}
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"x-request-id": "whole"}) as response:
                assert response.status == 200
                await response.read()
        served = {record.request_id: record for record in await records(url)}
    assert len(served["text"].token_ns) == 5
    whole = served["whole"]
    assert whole.token_ns == () and whole.ttft_s is None  # one JSON body: no token frames
    assert whole.last_frame_ns == whole.end_ns and whole.e2e_s is not None and whole.e2e_s > 0


async def test_an_error_answer_is_recorded_with_its_status() -> None:
    async with sim_server(TimingLog()) as url:
        async with aiohttp.ClientSession() as session:
            body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"x-request-id": "bad"}) as response:
                assert response.status == 404
        [record] = await records(url)
    assert (record.request_id, record.status, record.response_id, record.token_ns) == ("bad", 404, None, ())


async def test_a_dropped_stream_is_recorded_without_an_end() -> None:
    faults = FaultPlan.model_validate({"drop": {"rate": 1.0, "after_tokens": 3}})
    async with sim_server(TimingLog(), faults) as url:
        result = await stream(url, "cut", output_len=8)
        [record] = await records(url)
    assert not result.success
    assert len(record.token_ns) == 3 and record.end_ns is None


async def test_delete_clears_the_record() -> None:
    async with sim_server(TimingLog()) as url:
        await stream(url, "a")
        await stream(url, "b")
        async with aiohttp.ClientSession() as session, session.delete(f"{url}/sim/timings") as response:
            assert await response.json() == {"cleared": 2}
        assert await records(url) == []


async def test_timings_are_not_served_unless_recorded() -> None:
    async with sim_server(None) as url:
        await stream(url, "unrecorded")
        async with aiohttp.ClientSession() as session, session.get(f"{url}/sim/timings") as response:
            assert response.status == 404
            assert "--record-timings" in (await response.json())["error"]["message"]


def test_the_log_keeps_the_newest_records_up_to_its_capacity() -> None:
    log = TimingLog(capacity=2)
    for index in range(3):
        log.add(ServedTimings(f"r{index}", None, 200, None, index, (), None, None))
    assert [record.request_id for record in log.records()] == ["r1", "r2"]
    assert log.to_dict()["dropped"] == 1
    assert parse_timings(log.to_dict()) == log.records()
    assert log.clear() == 2 and log.records() == [] and log.dropped == 0


def test_the_cli_offers_the_flag() -> None:
    result = CliRunner().invoke(cli_app, ["sim", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--record-timings" in result.output
