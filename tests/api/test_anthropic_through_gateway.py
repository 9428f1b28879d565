"""An Anthropic upstream behind the gateway, driven by the unmodified openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.anthropic_server import API_KEY, CACHE_READ_TOKENS, INPUT_TOKENS, AnthropicServer
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.servers import serve_app


@pytest.fixture
def claude_gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, AnthropicServer]]:
    upstream = AnthropicServer()
    with serve_app(upstream.app) as base_url:
        config = {
            "store": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
            "backends": {"claude": {"type": "anthropic", "base_url": base_url, "api_key": API_KEY}},
            "models": {"claude-haiku": {"targets": [{"backend": "claude", "model": "claude-3-5-haiku-latest"}]}},
        }
        with run_gateway(config) as gw:
            yield gw, upstream


def test_chat_and_stream_through_anthropic(claude_gateway: tuple[RunningGateway, AnthropicServer]) -> None:
    gw, upstream = claude_gateway
    client = gw.client()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    answer = client.chat.completions.create(model="claude-haiku", messages=messages, max_tokens=50)
    assert answer.choices[0].message.content == "Echo: hello there"
    assert answer.model == "claude-haiku"
    assert answer.usage is not None and answer.usage.prompt_tokens >= INPUT_TOKENS
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS
    sent = upstream.requests[-1].body
    assert sent["system"] == "Be brief." and sent["model"] == "claude-3-5-haiku-latest"

    chunks = list(client.chat.completions.create(model="claude-haiku", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_errors_are_openai_shaped(claude_gateway: tuple[RunningGateway, AnthropicServer]) -> None:
    gw, _ = claude_gateway
    with pytest.raises(openai.RateLimitError) as caught:
        gw.client().chat.completions.create(model="claude-haiku",
                                            messages=[{"role": "user", "content": "FAULT_429"}])
    assert caught.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.BadRequestError) as bad:
        gw.client().chat.completions.create(model="claude-haiku", n=2,
                                            messages=[{"role": "user", "content": "hi"}])
    assert bad.value.body["param"] == "n"  # type: ignore[index]
