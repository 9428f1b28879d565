"""The client against a real loopback OpenAI-compatible server: counts, usage, and errors by class."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import aiohttp
import pytest

from sluice.loadtest.arrivals import Arrival, arrival_times_s
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


async def test_a_conversation_sends_each_turn_with_the_answers_so_far(upstream: tuple[object, str]) -> None:
    app, url = upstream
    conversation = BenchRequest("red green blue", 3, 2, follow_ups=(BenchRequest("one two", 2, 5),
                                                                     BenchRequest("six", 1, 4)))
    run = await run_benchmark(BenchTarget(url, "fake-model"), [conversation, PROMPT], max_concurrency=1)
    assert [(r.turn, r.success) for r in run.results] == [(0, True), (1, True), (2, True), (0, True)]
    first, second, third = (body["messages"] for body in app.bodies("/v1/chat/completions")[:3])
    assert first == [{"role": "user", "content": "red green blue"}]
    assert second == [*first, {"role": "assistant", "content": "red green"}, {"role": "user", "content": "one two"}]
    assert third == [*second, {"role": "assistant", "content": "one two"}, {"role": "user", "content": "six"}]
    # a turn's prompt is the whole conversation so far: earlier prompts and answers, then its own
    assert [r.prompt_tokens for r in run.results[:3]] == [3, 3 + 2 + 2, 3 + 2 + 2 + 2 + 1]


async def test_a_failed_turn_ends_its_conversation(upstream: tuple[object, str]) -> None:
    app, url = upstream
    app.fault, app.fault_times = "http_500", 1
    conversation = BenchRequest("red green blue", 3, 2, follow_ups=(BenchRequest("one two", 2, 5),))
    run = await run_benchmark(BenchTarget(url, "fake-model"), [conversation])
    assert [(r.turn, r.error) for r in run.results] == [(0, "http_500")]


async def test_conversations_need_the_chat_endpoint(upstream: tuple[object, str]) -> None:
    conversation = BenchRequest("a", 1, 1, follow_ups=(BenchRequest("b", 1, 1),))
    with pytest.raises(ValueError, match="chat endpoint"):
        await run_benchmark(BenchTarget(upstream[1], "fake-model", endpoint="completions"), [conversation])


async def test_a_404_before_any_success_stops_the_run(upstream: tuple[object, str]) -> None:
    _, url = upstream
    run = await run_benchmark(BenchTarget(url, "fake-model", endpoint="/v1/nothing/completions"), [PROMPT] * 5,
                              max_concurrency=1)
    assert [r.error for r in run.results] == ["http_404"]
    assert run.aborted == f"http_404 from POST {url}/v1/nothing/completions before any request succeeded"


async def test_requests_go_by_the_drawn_schedule_which_gives_the_offered_rate(upstream: tuple[object, str]) -> None:
    _, url = upstream
    run = await run_benchmark(BenchTarget(url, "fake-model"), [PROMPT] * 5, request_rate=400.0,
                              arrival=Arrival.CONSTANT, ramp_up_s=0.01)
    expected = list(itertools.islice(arrival_times_s(400.0, arrival=Arrival.CONSTANT, ramp_up_s=0.01), 5))
    assert list(run.send_times_s) == expected and run.offered_rate == pytest.approx(4 / expected[-1])
    assert all(r.success for r in run.results)
