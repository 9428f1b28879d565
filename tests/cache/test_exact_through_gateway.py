"""The exact cache end to end: a real gateway, the fake OpenAI upstream, the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.cache.support import FakeClock, metric, records
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

USER = [{"role": "user", "content": "alpha beta gamma delta"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def chats(fake: OpenAIUpstream) -> int:
    return len(fake.bodies("/v1/chat/completions"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cached(upstream: tuple[OpenAIUpstream, str], tmp_path: Path, clock: FakeClock) -> Iterator[RunningGateway]:
    config = upstream_config(upstream[1], tmp_path / "log.db", cache={"exact": {"ttl_s": 100}})
    with run_gateway(config) as gw:
        assert gw.state.cache is not None
        gw.state.cache.clock = clock
        yield gw


def create(gw: RunningGateway, headers: dict[str, str] | None = None, **params: Any) -> Any:
    params = {"model": "m", "messages": USER, "temperature": 0, **params}
    return gw.client().chat.completions.with_raw_response.create(extra_headers=headers or {}, **params)


def test_identical_deterministic_request_is_answered_from_the_cache(
        cached: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    first = create(cached, {"x-request-id": "first"})
    second = create(cached, {"x-request-id": "second"})
    assert chats(fake) == 1
    assert (first.headers["x-sluice-cache"], second.headers["x-sluice-cache"]) == ("miss", "hit-exact")
    one, two = first.parse(), second.parse()
    assert two.choices[0].message.content == one.choices[0].message.content == "alpha beta gamma delta"
    assert two.model == "m" and two.usage is not None and two.usage.completion_tokens == 4
    assert two.id == "chatcmpl-" + second.headers["x-request-id"] != one.id  # every response has its own id


def test_any_changed_param_is_a_different_entry(cached: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    create(cached)
    for params in ({"max_tokens": 50}, {"stop": ["zeta"]}, {"top_p": 0.5}, {"model": "m", "seed": 3},
                   {"messages": [{"role": "user", "content": "alpha beta gamma"}]}):
        assert create(cached, **params).headers["x-sluice-cache"] == "miss"
    assert chats(fake) == 6
    assert create(cached, user="someone-else").headers["x-sluice-cache"] == "hit-exact"  # `user` is ignored


def test_non_deterministic_requests_bypass_unless_seeded(cached: RunningGateway,
                                                         upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    plain = {"model": "m", "messages": USER}
    for _ in range(2):
        raw = cached.client().chat.completions.with_raw_response.create(**plain)
        assert raw.headers["x-sluice-cache"] == "bypass"
    assert chats(fake) == 2
    create(cached, temperature=0.9, seed=7)
    assert create(cached, temperature=0.9, seed=7).headers["x-sluice-cache"] == "hit-exact"
    assert chats(fake) == 3


def test_no_store_and_bypass_keep_the_answer_out(cached: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    assert create(cached, {"cache-control": "no-store"}).headers["x-sluice-cache"] == "miss"
    assert create(cached, {"x-sluice-cache": "bypass"}).headers["x-sluice-cache"] == "bypass"
    assert create(cached).headers["x-sluice-cache"] == "miss"  # neither stored anything
    assert create(cached, {"x-sluice-cache": "bypass"}).headers["x-sluice-cache"] == "bypass"  # nor looks up
    assert create(cached, {"cache-control": "no-store"}).headers["x-sluice-cache"] == "hit-exact"  # may look up
    assert chats(fake) == 4


def test_no_cache_and_refresh_skip_the_lookup_and_renew_the_entry(
        cached: RunningGateway, upstream: tuple[OpenAIUpstream, str], clock: FakeClock) -> None:
    fake, _ = upstream
    create(cached)  # stored at t0, ttl 100 s
    clock.advance(60)
    assert create(cached, {"cache-control": "no-cache"}).headers["x-sluice-cache"] == "bypass"
    clock.advance(60)  # t0 + 120: the first entry would have expired; the refreshed one lives to t0 + 160
    assert create(cached).headers["x-sluice-cache"] == "hit-exact"
    assert create(cached, {"x-sluice-cache": "refresh"}).headers["x-sluice-cache"] == "bypass"
    assert chats(fake) == 3


def test_entries_expire_after_their_ttl(cached: RunningGateway, upstream: tuple[OpenAIUpstream, str],
                                        clock: FakeClock) -> None:
    fake, _ = upstream
    create(cached)
    clock.advance(99)
    assert create(cached).headers["x-sluice-cache"] == "hit-exact"
    clock.advance(2)
    assert create(cached).headers["x-sluice-cache"] == "miss"
    assert chats(fake) == 2
    assert metric(cached, "sluice_cache_evictions_total", kind="exact", reason="expired") == 1


def test_a_bad_cache_header_is_a_400(cached: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        create(cached, {"x-sluice-cache": "please"})
    assert caught.value.body["param"] == "x-sluice-cache"  # type: ignore[index]


def test_cached_answer_replays_as_a_stream_the_sdk_parses(cached: RunningGateway,
                                                          upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    create(cached)
    stream = cached.client().chat.completions.create(model="m", messages=USER, temperature=0, stream=True,
                                                     stream_options={"include_usage": True})
    chunks = list(stream)
    assert chats(fake) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta gamma delta"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert all(c.model == "m" and c.object == "chat.completion.chunk" for c in chunks)
    # Without include_usage there is no usage chunk; the wire ends with [DONE].
    raw = httpx.post(cached.url + "/v1/chat/completions", json={"model": "m", "messages": USER, "temperature": 0,
                                                                 "stream": True})
    assert raw.headers["x-sluice-cache"] == "hit-exact"
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and len(events) == 4  # role, content, finish, [DONE]


def test_a_streamed_answer_is_stored_for_both_kinds_of_request(cached: RunningGateway,
                                                               upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    first = list(cached.client().chat.completions.create(model="m", messages=USER, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in first if c.choices) == "alpha beta gamma delta"
    answer = create(cached)
    assert answer.headers["x-sluice-cache"] == "hit-exact"
    parsed = answer.parse()
    assert parsed.choices[0].message.content == "alpha beta gamma delta"
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 4  # usage was asked upstream, kept
    again = list(cached.client().chat.completions.create(model="m", messages=USER, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices) == "alpha beta gamma delta"
    assert chats(fake) == 1


def test_tool_calls_are_cached_and_replayed(cached: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    streamed = list(cached.client().chat.completions.create(
        model="m", messages=USER, temperature=0, tools=TOOLS, tool_choice="required", stream=True))
    arguments = "".join(call.function.arguments or "" for c in streamed if c.choices and c.choices[0].delta.tool_calls
                        for call in c.choices[0].delta.tool_calls if call.function)
    assert arguments == '{"echo":"alpha beta gamma delta"}'
    answer = create(cached, tools=TOOLS, tool_choice="required")
    assert answer.headers["x-sluice-cache"] == "hit-exact"
    message = answer.parse().choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.tool_calls is not None
    call = message.message.tool_calls[0]
    assert call.function.name == "lookup" and call.function.arguments == arguments
    replay = list(cached.client().chat.completions.create(
        model="m", messages=USER, temperature=0, tools=TOOLS, tool_choice="required", stream=True))
    deltas = [c.choices[0].delta.tool_calls for c in replay if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0] is not None and deltas[0][0].function is not None
    assert deltas[0][0].function.arguments == arguments and deltas[0][0].id == call.id
    assert chats(fake) == 1


def test_truncated_answers_are_not_stored_unless_configured(upstream: tuple[OpenAIUpstream, str],
                                                            tmp_path: Path) -> None:
    fake, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "a.db")) as gw:
        for _ in range(2):
            assert create(gw, max_tokens=2).headers["x-sluice-cache"] == "miss"
    assert chats(fake) == 2
    with run_gateway(upstream_config(url, tmp_path / "b.db", cache={"store_truncated": True})) as gw:
        create(gw, max_tokens=2)
        assert create(gw, max_tokens=2).headers["x-sluice-cache"] == "hit-exact"
    assert chats(fake) == 3


def test_failed_answers_are_not_stored(cached: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    fake.fault = "http_500"  # every attempt (retries included) fails
    with pytest.raises(openai.InternalServerError):
        create(cached)
    fake.fault = "error_mid_stream:2"
    broken = cached.client().chat.completions.create(model="m", messages=USER, temperature=0, stream=True)
    with pytest.raises(openai.APIError):
        list(broken)
    fake.fault = None
    before = chats(fake)
    assert create(cached).headers["x-sluice-cache"] == "miss"
    assert chats(fake) == before + 1


def test_hits_are_logged_with_no_upstream_time_or_attempt(upstream: tuple[OpenAIUpstream, str],
                                                          tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(upstream[1], db)) as gw:
        create(gw, {"x-request-id": "miss"})
        create(gw, {"x-request-id": "hit"})
        list(gw.client().chat.completions.create(model="m", messages=USER, temperature=0, stream=True,
                                                 extra_headers={"x-request-id": "stream-hit"}))
        assert metric(gw, "sluice_cache_hits_total", kind="exact", model="m") == 2
        assert metric(gw, "sluice_cache_misses_total", kind="exact", model="m") == 1
        assert metric(gw, "sluice_cache_stores_total", kind="exact", model="m") == 1
        assert metric(gw, "sluice_cache_lookup_seconds_count", kind="exact") == 3
        assert metric(gw, "sluice_cache_entries", kind="exact") == 1
    by_id = {record.client_request_id: record for record in records(db)}
    miss, hit, stream_hit = by_id["miss"], by_id["hit"], by_id["stream-hit"]
    assert miss.cache_hit is None and miss.attempts == 1 and miss.upstream_s > 0
    for record in (hit, stream_hit):
        assert record.cache_hit == "exact" and record.attempts == 0 and record.upstream_s == 0
        assert record.status_code == 200 and record.response_body == "alpha beta gamma delta"
    assert stream_hit.ttft_s is not None and stream_hit.stream


def test_a_model_can_turn_the_cache_off(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    fake, url = upstream
    config = upstream_config(url, tmp_path / "log.db")
    config["models"]["m"]["cache"] = {"exact": {"enabled": False}}
    with run_gateway(config) as gw:
        assert gw.state.cache is None  # no model caches: the pipeline keeps its no-op stage
        for _ in range(2):
            assert "x-sluice-cache" not in create(gw).headers
    assert chats(fake) == 2
