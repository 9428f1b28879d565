"""Cost arithmetic on one request's token usage: API token prices, and token weights for GPU-hour sharing."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.backends import Usage
from sluice.catalog import TokenPrice

PER_MILLION = 1_000_000


@dataclass(slots=True, frozen=True)
class TokenSplit:
    """A usage's prompt tokens split by how they are billed; they add up to `usage.prompt_tokens`."""

    fresh_prompt: int  # processed normally
    cached_prompt: int  # read from a prompt cache
    cache_write: int  # written to a prompt cache (Anthropic)
    completion: int  # output, reasoning included

    @classmethod
    def of(cls, usage: Usage) -> TokenSplit:
        prompt = max(0, usage.prompt_tokens)
        cached = min(max(0, usage.cached_tokens or 0), prompt)
        written = min(max(0, usage.cache_write_tokens or 0), prompt - cached)
        return cls(prompt - cached - written, cached, written, max(0, usage.completion_tokens))


def token_cost_usd(price: TokenPrice, usage: Usage) -> float:
    """Fresh prompt x input + cached x cached-input + cache writes x write price + completion x output."""
    split = TokenSplit.of(usage)
    return (split.fresh_prompt * price.input_usd_per_1m + split.cached_prompt * price.cached_input
            + split.cache_write * price.cache_write + split.completion * price.output_usd_per_1m) / PER_MILLION


@dataclass(slots=True, frozen=True)
class TokenWeights:
    """What a token costs a GPU, in output tokens' worth: prefill is parallel and much cheaper per token."""

    prompt: float = 0.25
    cached_prompt: float = 0.025

    def weigh(self, usage: Usage) -> float:
        split = TokenSplit.of(usage)
        return ((split.fresh_prompt + split.cache_write) * self.prompt + split.cached_prompt * self.cached_prompt
                + split.completion)


__all__ = ["PER_MILLION", "TokenSplit", "TokenWeights", "token_cost_usd"]
