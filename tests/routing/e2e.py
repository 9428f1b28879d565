"""End-to-end helpers for routing: several fake upstreams, a gateway over them, its metrics and request log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from sluice.records import RequestRecord
from tests.support.gateway import RunningGateway
from tests.support.gateway import records as log_rows
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

USER = [{"role": "user", "content": "one two three four five"}]
ANSWER = "one two three four five"


@contextmanager
def upstreams(*names: str, **settings: Any) -> Iterator[dict[str, tuple[OpenAIUpstream, str]]]:
    """Fake OpenAI upstreams served on loopback: name -> (app, base url)."""
    with ExitStack() as stack:
        served = {}
        for name in names:
            app = make_openai_upstream(models=["up-model"], **settings)
            served[name] = (app, stack.enter_context(serve_app(app)))
        yield served


def config(db: Path, backends: dict[str, str], models: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A gateway config: `backends` name -> upstream base url (without /v1), `models` as in the YAML."""
    return {
        "store": {"url": f"sqlite:///{db}", "log_bodies": "full", "flush_interval_s": 0.05},
        "backends": {name: {"type": "openai", "base_url": url + "/v1", "read_timeout_s": 5.0}
                     for name, url in backends.items()},
        "models": models,
        **sections,
    }


def chat_paths(app: OpenAIUpstream) -> int:
    """Chat requests the upstream received (health checks and others left out)."""
    return len(app.bodies("/v1/chat/completions"))


def samples(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = gw.metrics_text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(gw: RunningGateway, name: str, **labels: str) -> float:
    return samples(gw).get((name, tuple(sorted(labels.items()))), 0.0)


def records(db: Path) -> list[RequestRecord]:
    """The request log, oldest first (read after the gateway stopped, so every row is written)."""
    return list(reversed(log_rows(db)))


def stream_events(gw: RunningGateway, model: str = "m", **body: Any) -> tuple[httpx.Response, list[Any]]:
    """POST a streamed chat request; the response (headers, status) and its parsed `data:` events."""
    with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=30,
                      json={"model": model, "messages": USER, "stream": True, **body}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    events = [line[6:] if line == "data: [DONE]" else orjson.loads(line[6:]) for line in lines]
    return response, events


def streamed_text(events: list[Any]) -> str:
    return "".join((e["choices"][0]["delta"].get("content") or "") for e in events
                   if isinstance(e, dict) and e.get("choices"))


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Until `condition()` holds (checked every 10 ms); fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)
