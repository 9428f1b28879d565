"""Cost accounting: token counting, API prices and GPU-hour cost per request, cost metrics and reports;
virtual keys, their limits and budgets.

Virtual keys live in the store (SQLAlchemy) and shared state (Redis when configured), so their names load on
first use: the simulator and the bench client import this package to count tokens, and never load either. So do
the reports over the request log (SQLAlchemy; the plot, matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    encoding_for,
    tokenizer_for,
)
from sluice.cost.usage_cost import TokenSplit, TokenWeights, token_cost_usd
from sluice.lazy import on_first_use

if TYPE_CHECKING:
    from sluice.cost.gpu_report import GPUUsage, gpu_usage
    from sluice.cost.keys_admission import KeyAdmission, Reservation
    from sluice.cost.keys_service import KeyService, KeySpend
    from sluice.cost.report import GROUPINGS, CostReport, CostRow, cost_report, format_usd, parse_moment
    from sluice.cost.report_plot import plot_cost_report

_ON_FIRST_USE = {  # name -> module: these import SQLAlchemy and the shared state (redis)
    "KeyAdmission": "sluice.cost.keys_admission",
    "Reservation": "sluice.cost.keys_admission",
    "KeyService": "sluice.cost.keys_service",
    "KeySpend": "sluice.cost.keys_service",
    "GPUUsage": "sluice.cost.gpu_report",  # these read the request log (SQLAlchemy)
    "gpu_usage": "sluice.cost.gpu_report",
    "GROUPINGS": "sluice.cost.report",
    "CostReport": "sluice.cost.report",
    "CostRow": "sluice.cost.report",
    "cost_report": "sluice.cost.report",
    "format_usd": "sluice.cost.report",
    "parse_moment": "sluice.cost.report",
    "plot_cost_report": "sluice.cost.report_plot",  # and matplotlib
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "GROUPINGS",
    "AdmissionStage",
    "BudgetExceeded",
    "CostMetrics",
    "CostReport",
    "CostRow",
    "GPUHours",
    "GPUMeter",
    "GPUPriced",
    "GPUUsage",
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
    "cost_report",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_text_tokens",
    "encoding_for",
    "format_usd",
    "gpu_hours",
    "gpu_usage",
    "hash_token",
    "parse_key_id",
    "parse_moment",
    "plot_cost_report",
    "token_cost_usd",
    "tokenizer_for",
    "usd_header",
]
