"""The client against a real loopback OpenAI-compatible server: counts, usage, and errors by class."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from sluice.loadtest.client import COMPLETIONS_ENDPOINT, BenchTarget, run_benchmark, send_request
from sluice.loadtest.datasets import BenchRequest
from tests.support.openai_server import make_openai_upstream
from tests.support.servers import serve_app

PROMPT = BenchRequest("alpha beta gamma delta epsilon zeta eta theta", 8, 5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[object, str]]:
    app = make_openai_upstream()
    with serve_app(app) as url:
        yield app, url


@pytest.fixture(autouse=True)
def healthy(upstream: tuple[object, str]) -> None:
    upstream[0].reset()


async def test_all_requests_succeed_with_output_tokens_from_usage(upstream: tuple[object, str]) -> None:
    app, url = upstream
    run = await run_benchmark(BenchTarget(url, "fake-model"), [PROMPT] * 6, max_concurrency=2)
    assert [r.success for r in run.results] == [True] * 6
    assert {r.output_tokens for r in run.results} == {5}  # echo cut at max_completion_tokens, usage says 5
    assert not any(r.output_tokens_estimated for r in run.results)
    assert all(len(r.itl_s) == 4 and r.ttft_s <= r.e2e_s for r in run.results)
    body = app.requests[-1].body
    assert body["stream"] and body["stream_options"] == {"include_usage": True} and body["max_completion_tokens"] == 5


async def test_completions_endpoint(upstream: tuple[object, str]) -> None:
    app, url = upstream
    run = await run_benchmark(BenchTarget(url, "fake-model", endpoint=COMPLETIONS_ENDPOINT), [PROMPT] * 2,
                              request_rate=1000.0, seed=1)
    assert [r.output_tokens for r in run.results] == [5, 5]
    assert app.requests[-1].body["prompt"] == PROMPT.prompt


async def test_server_errors_are_counted_by_class(upstream: tuple[object, str]) -> None:
    app, url = upstream
    app.fault, app.fault_times = "http_500", 2
    run = await run_benchmark(BenchTarget(url, "fake-model"), [PROMPT] * 5, max_concurrency=1)
    assert sorted(r.error or "ok" for r in run.results) == ["http_500", "http_500", "ok", "ok", "ok"]


@pytest.mark.parametrize(("fault", "error"), [("drop_mid_stream:2", "ClientPayloadError"),
                                              ("error_mid_stream:2", "stream_error"),
                                              ("no_done", "incomplete_stream"), ("http_429", "http_429")])
async def test_broken_streams_fail_with_their_class(upstream: tuple[object, str], fault: str, error: str) -> None:
    _, url = upstream
    run = await run_benchmark(BenchTarget(url, f"fault/{fault}"), [PROMPT])
    assert run.results[0].error == error and not run.results[0].success


async def test_missing_usage_falls_back_to_retokenising_and_is_marked(upstream: tuple[object, str]) -> None:
    _, url = upstream
    run = await run_benchmark(BenchTarget(url, "fault/no_usage"), [PROMPT])
    assert run.results[0].success and run.results[0].output_tokens_estimated
    assert run.results[0].output_tokens == 5  # "alpha beta gamma delta epsilon": 5 tokens in cl100k


async def test_sse_quirks_are_tolerated(upstream: tuple[object, str]) -> None:
    _, url = upstream
    async with aiohttp.ClientSession() as session:
        result = await send_request(session, BenchTarget(url, "fault/sse_quirks"), PROMPT)
    assert result.success and result.output_tokens == 5


async def test_api_key_is_sent_as_bearer() -> None:
    app = make_openai_upstream(api_key="sekret")
    with serve_app(app) as url:
        ok = await run_benchmark(BenchTarget(url, "fake-model", api_key="sekret"), [PROMPT])
        refused = await run_benchmark(BenchTarget(url, "fake-model"), [PROMPT])
    assert ok.results[0].success and refused.results[0].error == "http_401"
