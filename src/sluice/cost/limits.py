"""A virtual key's RPM/TPM limits as GCRA rate rules, and the tokens a request counts against TPM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.backends import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from sluice.cost.keys import VirtualKey
from sluice.cost.tokens import count_message_tokens, count_prompt_tokens, count_text_tokens
from sluice.state import RateRule

if TYPE_CHECKING:
    from sluice.gateway.context import RequestContext

MINUTE_S = 60.0


def rpm_rule(key: VirtualKey, cost: float = 1) -> RateRule:
    assert key.rpm is not None
    return RateRule("{" + key.id + "}:rpm", key.rpm, MINUTE_S, cost)


def tpm_rule(key: VirtualKey, tokens: float) -> RateRule:
    assert key.tpm is not None
    return RateRule("{" + key.id + "}:tpm", key.tpm, MINUTE_S, tokens)


def prompt_tokens(request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest, model: str) -> int:
    """Prompt tokens counted before the request runs (the upstream's own count replaces it at settle)."""
    if isinstance(request, ChatCompletionRequest):
        return count_message_tokens(request.messages, model)
    if isinstance(request, CompletionRequest):
        return count_prompt_tokens(request.prompt, model)
    return count_prompt_tokens(request.input, model)


def used_tokens(ctx: RequestContext, counted_prompt: int) -> int:
    """Tokens a finished request used: the upstream's usage; else the counts; 0 if it never reached upstream."""
    if ctx.cache_hit is not None or ctx.attempts == 0:
        return 0
    usage = ctx.usage
    if usage is not None:
        return usage.prompt_tokens + usage.completion_tokens
    text = "".join(ctx.text_parts)
    model = ctx.target.upstream_model if ctx.target is not None else ""
    return counted_prompt + (count_text_tokens(text, model) if text else 0)


__all__ = ["MINUTE_S", "prompt_tokens", "rpm_rule", "tpm_rule", "used_tokens"]
