"""Cost accounting: token counting, API prices and GPU-hour cost per request, cost metrics and reports;
virtual keys, their limits and budgets.

Virtual keys live in the store (SQLAlchemy) and shared state (Redis when configured), so their names load on
first use: the simulator and the bench client import this package to count tokens, and never load either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sluice.cost.gpu_meter import GPUMeter
from sluice.cost.keys import VirtualKey, hash_token, parse_key_id
from sluice.cost.keys_errors import (
    BudgetExceeded,
    KeyNotFound,
    KeysUnavailable,
    ModelNotAllowed,
    RateLimitExceeded,
)
from sluice.cost.keys_metrics import KeyMetrics
from sluice.cost.metrics import CostMetrics
from sluice.cost.price_book import GPUHours, GPUPriced, PriceBook, TargetPrice, TokenPriced, gpu_hours
from sluice.cost.pricing import GatewayPricing, build_pricing, usd_header
from sluice.cost.stage import AdmissionStage, PricingStage
from sluice.cost.tokens import (
    TokenizerChoice,
    count_message_tokens,
    count_prompt_tokens,
    count_text_tokens,
    tokenizer_for,
)
from sluice.cost.usage_cost import TokenSplit, TokenWeights, token_cost_usd

if TYPE_CHECKING:
    from sluice.cost.keys_admission import KeyAdmission, Reservation
    from sluice.cost.keys_service import KeyService, KeySpend

_ON_FIRST_USE = {  # name -> module: these import SQLAlchemy and the shared state (redis)
    "KeyAdmission": "sluice.cost.keys_admission",
    "Reservation": "sluice.cost.keys_admission",
    "KeyService": "sluice.cost.keys_service",
    "KeySpend": "sluice.cost.keys_service",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "AdmissionStage",
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
    "PricingStage",
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
