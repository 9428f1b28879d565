"""The HTTP server on loopback, driven by the official openai SDK: chat, completions, streaming, errors, /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest

from sluice.cost import count_text_tokens
from sluice.sim import Simulator, create_app
from sluice.sim.server import EventStream, WholeAnswer, sse_frames
from tests.sim.support import MODEL, completion_call, make_simulator, metric_samples
from tests.support.servers import serve_app


@pytest.fixture
def simulator() -> Simulator:
    return make_simulator(max_model_len=2048)


@pytest.fixture
def base_url(simulator: Simulator) -> Iterator[str]:
    with serve_app(create_app(simulator)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def tokens(text: str) -> int:
    return count_text_tokens(text, "llama-3.1-8b")


def test_chat_completion_with_exact_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi there"}],
                                            max_tokens=24)
    text = answer.choices[0].message.content or ""
    assert answer.id.startswith("chatcmpl-") and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 24 == tokens(text)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 24


def test_streamed_chat_has_a_role_delta_one_chunk_per_token_a_usage_chunk_and_done(base_url: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "stream please"}], "max_tokens": 12,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    chunks = list(client.chat.completions.create(stream=True, **{k: v for k, v in body.items() if k != "stream"}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 12 and all(tokens(piece) == 1 for piece in content)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12 == tokens("".join(content))
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "length"


def test_streams_carry_usage_only_when_asked(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt="count to ten", max_tokens=5, stream=True))
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(chunk.choices[0].text for chunk in chunks)


def test_completions_non_streaming_and_determinism(client: openai.OpenAI) -> None:
    first = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=40, seed=3)
    again = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=40, seed=3)
    assert first.object == "text_completion" and first.choices[0].text == again.choices[0].text
    assert first.usage is not None and first.usage.completion_tokens == tokens(first.choices[0].text) == 40


def test_models_says_plainly_it_is_a_simulator(client: openai.OpenAI, base_url: str) -> None:
    (card,) = client.models.list().data
    assert card.id == MODEL and card.owned_by == "sluice-simulator"
    extra = card.model_extra or {}
    assert extra["simulated"] is True and "Simulated" in extra["description"]
    assert extra["max_model_len"] == 2048
    assert httpx.get(f"{base_url}/health").status_code == 200


def test_too_long_requests_get_vllms_400(base_url: str, client: openai.OpenAI) -> None:
    prompt = " ".join(["word"] * 100)
    response = httpx.post(f"{base_url}/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 2000})
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context length "
                   "is 2048 tokens and your request has 100 input tokens (2000 > 2048 - 100). "
                   "(parameter=max_tokens, value=2000)",
        "type": "BadRequestError", "param": "max_tokens", "code": 400}}
    with pytest.raises(openai.BadRequestError, match="maximum context length is 2048"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x " * 3000}])


def test_unknown_model_and_bad_bodies(base_url: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-9", prompt="hi", max_tokens=1)
    response = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert response.status_code == 400 and response.json()["error"]["type"] == "BadRequestError"


def test_metrics_have_vllms_names_and_count_the_traffic(base_url: str, client: openai.OpenAI) -> None:
    for max_tokens in (5, 7):
        client.completions.create(model=MODEL, prompt="a b c", max_tokens=max_tokens)
    samples = metric_samples(base_url)
    for name in ("vllm:num_requests_running{}", "vllm:num_requests_waiting{}", "vllm:kv_cache_usage_perc{}",
                 "vllm:gpu_cache_usage_perc{}", "vllm:num_preemptions_total{}"):
        assert samples[name] == 0
    assert samples["vllm:prompt_tokens_total{}"] == 6
    assert samples["vllm:generation_tokens_total{}"] == 12
    assert samples["vllm:request_success_total{finished_reason=length}"] == 2
    assert samples["vllm:time_to_first_token_seconds_count{}"] == 2
    assert samples["vllm:inter_token_latency_seconds_count{}"] == 10
    assert samples["vllm:time_per_output_token_seconds_count{}"] == 10
    assert samples["vllm:e2e_request_latency_seconds_count{}"] == 2
    assert samples["vllm:request_queue_time_seconds_count{}"] == 2
    text = httpx.get(f"{base_url}/metrics").text
    assert f'model_name="{MODEL}"' in text and 'engine="0"' in text


async def test_a_client_that_leaves_mid_stream_aborts_its_engine_request() -> None:
    simulator = make_simulator()
    await simulator.start()
    frames, gone = [], asyncio.Event()

    async def send(message: dict[str, object]) -> None:
        if message.get("body"):
            frames.append(message["body"])
            if len(frames) == 3:
                gone.set()

    async def receive() -> dict[str, object]:
        await gone.wait()
        return {"type": "http.disconnect"}

    admission = simulator.admit(completion_call("hi there", max_tokens=1000))
    try:
        await EventStream(sse_frames(simulator.run(admission), include_usage=True), {})({"type": "http"}, receive,
                                                                                         send)
        assert 3 <= len(frames) < 1000
        assert not simulator.core.has_work() and simulator.core.kv_cache_usage == 0.0
        labels = {"model_name": MODEL, "engine": "0", "finished_reason": "abort"}
        assert simulator.metrics.registry.get_sample_value("vllm:request_success_total", labels) == 1
    finally:
        await simulator.stop()


async def test_a_client_that_leaves_before_a_whole_answer_aborts_its_engine_request() -> None:
    simulator = make_simulator()
    await simulator.start()
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        while not simulator.core.has_work():  # leave once the engine has the request
            await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    call = completion_call("hi there", max_tokens=1000)
    try:
        answer = simulator.collect(call, simulator.run(simulator.admit(call)))
        await WholeAnswer(answer, {})({"type": "http"}, receive, send)
        assert sent == [] and not simulator.core.has_work()
        labels = {"model_name": MODEL, "engine": "0", "finished_reason": "abort"}
        assert simulator.metrics.registry.get_sample_value("vllm:request_success_total", labels) == 1
    finally:
        await simulator.stop()
