"""The stage chain on its own: order, the three places a stage acts, end hooks, exclusive stage times."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from sluice.backends import ChatCompletionRequest, Chunk
from sluice.gateway import Call, Chain, ChainSet, Next, Reply, RequestContext
from sluice.gateway import chain as chain_module


def make_call(stream: bool = True) -> Call:
    ctx = RequestContext("req-1", "chat", None)
    ctx.stream = stream
    return Call(ctx, ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}]))


async def chunks(*texts: str) -> Reply:
    for text in texts:
        yield Chunk({"choices": []}, text=text, has_output=True)


class Terminal:
    def __init__(self, *texts: str, events: list[str] | None = None) -> None:
        self.texts = texts
        self.events = events if events is not None else []
        self.calls = 0

    async def __call__(self, call: Call) -> Reply:
        self.calls += 1
        self.events.append("terminal")
        return chunks(*self.texts)


class Recording:
    """Acts in all three places and writes down when."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events

    async def __call__(self, call: Call, next: Next) -> Reply:
        self.events.append(f"{self.name}:before")
        call.on_end(self.name, lambda ctx: self.events.append(f"{self.name}:end"))
        call.on_record(lambda ctx, record: self.events.append(f"{self.name}:record"))
        reply = await next(call)
        self.events.append(f"{self.name}:after-next")
        return self._around(reply)

    async def _around(self, reply: Reply) -> Reply:
        async with aclosing(reply):
            async for chunk in reply:
                yield Chunk(chunk.payload, text=f"{self.name}({chunk.text})", has_output=True)


async def drain(reply: Reply) -> list[str]:
    async with aclosing(reply):
        return [chunk.text async for chunk in reply]


def test_stages_run_in_order_wrap_the_stream_inside_out_and_end_innermost_first() -> None:
    events: list[str] = []
    chain = Chain([Recording("a", events), Recording("b", events)], Terminal("x", "y", events=events))
    call = make_call()

    async def run() -> list[str]:
        return await drain(await chain(call))

    texts = asyncio.run(run())
    call.end()
    call.recorded(object())  # type: ignore[arg-type]
    assert texts == ["a(b(x))", "a(b(y))"]  # b wraps the terminal's stream, a wraps b's
    assert events == ["a:before", "b:before", "terminal", "b:after-next", "a:after-next",
                      "b:end", "a:end", "a:record", "b:record"]
    assert chain.names == ("a", "b")


def test_a_stage_that_answers_itself_never_reaches_the_terminal() -> None:
    class Answer:
        name = "cache"

        async def __call__(self, call: Call, next: Next) -> Reply:
            return chunks("cached")

    terminal = Terminal("fresh")
    assert asyncio.run(_drain_chain(Chain([Answer()], terminal))) == ["cached"]
    assert terminal.calls == 0


def test_a_stage_that_refuses_raises_before_any_chunk() -> None:
    class Refuse:
        name = "admission"

        async def __call__(self, call: Call, next: Next) -> Reply:
            raise PermissionError("no")

    terminal = Terminal("fresh")
    with pytest.raises(PermissionError):
        asyncio.run(_drain_chain(Chain([Refuse()], terminal)))
    assert terminal.calls == 0


async def _drain_chain(chain: Chain) -> list[str]:
    return await drain(await chain(make_call()))


def test_end_hooks_run_once_and_one_that_raises_does_not_stop_the_others() -> None:
    call = make_call()
    ran: list[str] = []

    def broken(ctx: RequestContext) -> None:
        raise RuntimeError("bug")

    call.on_end("first", lambda ctx: ran.append("first"))
    call.on_end("broken", broken)
    call.on_record(lambda ctx, record: ran.append("record"))
    call.end()
    call.end()
    call.recorded(object())  # type: ignore[arg-type]
    assert ran == ["first", "record"]
    assert set(call.ctx.stage_s) == {"first", "broken"}  # each hook's time counts for its stage


def test_stage_times_are_exclusive_of_the_stages_inside_and_of_the_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(chain_module, "perf_counter", clock)

    class Spend:
        def __init__(self, name: str, before_s: float, end_s: float = 0.0) -> None:
            self.name, self.before_s, self.end_s = name, before_s, end_s

        async def __call__(self, call: Call, next: Next) -> Reply:
            clock.now += self.before_s
            if self.end_s:
                call.on_end(self.name, lambda ctx: clock.advance(self.end_s))
            return await next(call)

    class SlowUpstream:
        async def __call__(self, call: Call) -> Reply:
            clock.now += 5.0
            return chunks("x")

    chain = Chain([Spend("outer", 0.25, end_s=0.5), Spend("inner", 0.125)], SlowUpstream())
    call = make_call()
    asyncio.run(_drain_call(chain, call))
    call.end()
    assert call.ctx.stage_s == {"outer": 0.75, "inner": 0.125}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _drain_call(chain: Chain, call: Call) -> list[str]:
    return await drain(await chain(call))


def test_an_end_only_stage_registers_its_hook_where_it_stands_in_the_chain() -> None:
    events: list[str] = []

    class EndOnly:
        name = "pricing"

        def end(self, ctx: RequestContext) -> None:
            events.append("pricing:end")

    cases: list[tuple[list[Any], list[str]]] = [
        ([Recording("a", events), EndOnly(), Recording("b", events)], ["b:end", "pricing:end", "a:end"]),
        ([EndOnly(), Recording("a", events)], ["a:end", "pricing:end"]),
        ([Recording("a", events), EndOnly()], ["pricing:end", "a:end"]),
    ]
    for stages, ends in cases:
        events.clear()
        chain = Chain(stages, Terminal("x"))
        call = make_call()
        asyncio.run(_drain_call(chain, call))
        call.end()
        assert [event for event in events if event.endswith(":end")] == ends
        assert "pricing" in call.ctx.stage_s and chain.names == tuple(stage.name for stage in stages)


def test_a_stage_that_answers_itself_is_timed_until_the_chain_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(chain_module, "perf_counter", clock)

    class Answer:
        name = "cache"

        async def __call__(self, call: Call, next: Next) -> Reply:
            clock.now += 0.5
            return chunks("cached")

    call = make_call()
    asyncio.run(_drain_call(Chain([Answer()], Terminal()), call))
    call.close_stage()
    assert call.ctx.stage_s == {"cache": 0.5}


def test_a_chain_has_each_stage_once() -> None:
    events: list[str] = []
    with pytest.raises(ValueError, match="each stage once"):
        Chain([Recording("a", events), Recording("a", events)], Terminal())


def test_chain_set_builds_on_first_use_keeps_no_unknown_names_and_rebuilds_after_a_change() -> None:
    built: list[tuple[str, Any]] = []

    def build(model: str, kind: Any) -> Chain | None:
        built.append((model, kind))
        return Chain([], Terminal()) if model == "known" else None

    chains = ChainSet(build)
    first = chains.get("known", "generate")
    assert chains.get("known", "generate") is first
    assert chains.get("nope", "generate") is None
    assert chains.get("nope", "generate") is None
    assert built == [("known", "generate"), ("nope", "generate"), ("nope", "generate")]  # unknown: not kept
    chains.invalidate("known")
    assert chains.get("known", "generate") is not first


def test_response_headers_are_collected_on_the_call() -> None:
    call = make_call()
    assert call.response_headers is None  # no dict until a stage sets one
    call.set_header("x-sluice-cache", "miss")
    assert call.response_headers == {"x-sluice-cache": "miss"}
