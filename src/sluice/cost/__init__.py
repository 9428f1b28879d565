"""Cost accounting: token counting, API prices and GPU-hour cost per request, cost metrics and reports."""

from sluice.cost.gpu_meter import GPUMeter
from sluice.cost.keys import VirtualKey, hash_token, parse_key_id
from sluice.cost.keys_admission import KeyAdmission, Reservation
from sluice.cost.keys_errors import (
    BudgetExceeded,
    KeyNotFound,
    KeysUnavailable,
    ModelNotAllowed,
    RateLimitExceeded,
)
from sluice.cost.keys_metrics import KeyMetrics
from sluice.cost.keys_service import KeyService, KeySpend
from sluice.cost.metrics import CostMetrics
from sluice.cost.price_book import GPUHours, GPUPriced, PriceBook, TargetPrice, TokenPriced, gpu_hours
from sluice.cost.pricing import GatewayPricing, build_pricing, usd_header
from sluice.cost.tokens import (
    TokenizerChoice,
    count_message_tokens,
    count_prompt_tokens,
    count_text_tokens,
    tokenizer_for,
)
from sluice.cost.usage_cost import TokenSplit, TokenWeights, token_cost_usd

__all__ = [
    "BudgetExceeded",
    "CostMetrics",
    "GPUHours",
    "GPUMeter",
    "GPUPriced",
    "GatewayPricing",
    "KeyAdmission",
    "KeyMetrics",
    "KeyNotFound",
    "KeyService",
    "KeySpend",
    "KeysUnavailable",
    "ModelNotAllowed",
    "PriceBook",
    "RateLimitExceeded",
    "Reservation",
    "TargetPrice",
    "TokenPriced",
    "TokenSplit",
    "TokenWeights",
    "TokenizerChoice",
    "VirtualKey",
    "build_pricing",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_text_tokens",
    "gpu_hours",
    "hash_token",
    "parse_key_id",
    "token_cost_usd",
    "tokenizer_for",
    "usd_header",
]
