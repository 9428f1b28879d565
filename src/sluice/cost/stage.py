"""The chain's cost stages (gateway/chain.py): admission by virtual key, and pricing when the request ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.cost.keys_admission import KeyAdmission  # SQLAlchemy, Redis: loaded by whoever builds one
    from sluice.cost.pricing import GatewayPricing
    from sluice.gateway.chain import Call, Next, Reply


class AdmissionStage:
    """May this key call this model now: permissions, RPM/TPM limits, budget reservation; settled at the end.

    Authentication (who is calling) happens at the API edge, before the body is read; this stage admits the
    request the body describes. Always in the chain: keys are created at run time, and a request without a
    virtual key passes with one attribute check.
    """

    name = "admission"

    def __init__(self, admission: KeyAdmission) -> None:
        self.admission = admission

    async def __call__(self, call: Call, next: Next) -> Reply:
        if call.ctx.key is None:
            return await next(call)
        call.on_end(self.name, self.admission.settle)  # however it ends: reconcile what admit reserves
        await self.admission.admit(call.ctx, call.request)
        return await next(call)


class PricingStage:
    """The request's cost from its usage and target (`ctx.cost_usd`), when it ends; inside admission, so the
    settlement sees the price. An end-only stage (gateway/chain.py `EndStage`): no link of its own. Absent from
    the chain when `pricing.enabled` is false."""

    name = "pricing"

    def __init__(self, pricing: GatewayPricing) -> None:
        self.end = pricing.price


__all__ = ["AdmissionStage", "PricingStage"]
