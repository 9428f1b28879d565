"""SSE frames the runner writes to the client: the chain's chunks rewritten for it, usage estimated when missing."""

from __future__ import annotations

from collections.abc import Callable

from sluice.backends import Chunk, Usage, encode_data
from sluice.gateway.context import RequestContext

Quote = Callable[[RequestContext], float | None]  # the request's cost now (cost/ GatewayPricing.quote)


def take(held: list[bytes]) -> bytes:
    frames = held[0] if len(held) == 1 else b"".join(held)
    held.clear()
    return frames


def client_frame(ctx: RequestContext, chunk: Chunk, public_model: str, include_usage: bool,
                 quote: Quote | None) -> bytes | None:
    payload = chunk.payload
    if chunk.usage is not None:
        ctx.usage = chunk.usage
        if include_usage and not payload.get("choices"):  # the final usage-only chunk carries the cost
            add_cost(payload.get("usage"), quote(ctx) if quote is not None else None)
    if chunk.finish_reason is not None:
        ctx.finish_reason = chunk.finish_reason
    if not include_usage:
        # We always ask upstream for usage; hide it from clients that did not ask.
        if not payload.get("choices"):
            return None
        payload.pop("usage", None)
    payload["model"] = public_model
    return encode_data(payload)


def estimated_usage_frame(ctx: RequestContext, public_model: str, quote: Quote | None) -> bytes:
    record = ctx.finish(keep_bodies=False)  # counts tokens with the tokenizer fallback
    usage = Usage(record.prompt_tokens or 0, record.completion_tokens or 0).to_dict()
    add_cost(usage, quote(ctx) if quote is not None else None)
    obj = "chat.completion.chunk" if ctx.endpoint == "chat" else "text_completion"
    return encode_data({"id": f"usage-{ctx.request_id}", "object": obj, "model": public_model,
                        "choices": [], "usage": usage})


def add_cost(usage: object, cost_usd: float | None) -> None:
    """`usage.cost_usd` (an extension field: the OpenAI SDKs keep unknown usage fields) when the cost is known."""
    if cost_usd is not None and isinstance(usage, dict):
        usage["cost_usd"] = cost_usd
