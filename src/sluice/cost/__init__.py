"""Cost accounting: token counting now; pricing, GPU-hour cost and budgets arrive with the cost issue."""

from sluice.cost.tokens import count_message_tokens, count_prompt_tokens, count_text_tokens

__all__ = ["count_message_tokens", "count_prompt_tokens", "count_text_tokens"]
