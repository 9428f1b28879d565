"""SSE frames the relay writes to the client: upstream chunks rewritten for it, cached answers replayed."""

from __future__ import annotations

from time import perf_counter

from sluice.backends import Chunk, Completion, Usage
from sluice.backends.sse import DONE, encode_data
from sluice.cache.replay import replay_chunks
from sluice.gateway.context import RequestContext
from sluice.gateway.stages import Pricing


def replay_frames(ctx: RequestContext, answer: Completion, public_model: str, include_usage: bool,
            pricing: Pricing) -> bytes:
    """A cached answer as one write of the frames an upstream stream would have sent."""
    frames = []
    for chunk in replay_chunks(answer, ctx.endpoint):
        if chunk.has_output:
            ctx.timer.on_output(perf_counter())
            ctx.text_parts.append(chunk.text)
        frame = client_frame(ctx, chunk, public_model, include_usage, pricing)
        if frame is not None:
            frames.append(frame)
    if include_usage and ctx.usage is None:
        frames.append(estimated_usage_frame(ctx, public_model, pricing))
    frames.append(DONE)
    return b"".join(frames)


def take(held: list[bytes]) -> bytes:
    frames = held[0] if len(held) == 1 else b"".join(held)
    held.clear()
    return frames


def client_frame(ctx: RequestContext, chunk: Chunk, public_model: str, include_usage: bool,
                  pricing: Pricing) -> bytes | None:
    payload = chunk.payload
    if chunk.usage is not None:
        ctx.usage = chunk.usage
        if include_usage and not payload.get("choices"):  # the final usage-only chunk carries the cost
            add_cost(payload.get("usage"), pricing.quote(ctx))
    if chunk.finish_reason is not None:
        ctx.finish_reason = chunk.finish_reason
    if not include_usage:
        # We always ask upstream for usage; hide it from clients that did not ask.
        if not payload.get("choices"):
            return None
        payload.pop("usage", None)
    payload["model"] = public_model
    return encode_data(payload)


def estimated_usage_frame(ctx: RequestContext, public_model: str, pricing: Pricing) -> bytes:
    record = ctx.finish(keep_bodies=False)  # counts tokens with the tokenizer fallback
    usage = Usage(record.prompt_tokens or 0, record.completion_tokens or 0).to_dict()
    add_cost(usage, pricing.quote(ctx))
    obj = "chat.completion.chunk" if ctx.endpoint == "chat" else "text_completion"
    return encode_data({"id": f"usage-{ctx.request_id}", "object": obj, "model": public_model,
                        "choices": [], "usage": usage})


def add_cost(usage: object, cost_usd: float | None) -> None:
    """`usage.cost_usd` (an extension field: the OpenAI SDKs keep unknown usage fields) when the cost is known."""
    if cost_usd is not None and isinstance(usage, dict):
        usage["cost_usd"] = cost_usd
