"""The request path: each model's stage chain (`chain`), the routing terminal that ends it, and the runner at
the API's edge (`pipeline`) that ends every request with its `RequestRecord` (defined in records/)."""

from sluice.gateway.chain import Call, Chain, ChainSet, EndStage, Kind, Next, Reply, Stage
from sluice.gateway.context import RequestContext
from sluice.gateway.pipeline import Gateway
from sluice.gateway.slots import Slots
from sluice.gateway.startup import check_startup, startup_problems
from sluice.gateway.terminal import RoutingTerminal
from sluice.records import RequestRecord

__all__ = ["Call", "Chain", "ChainSet", "EndStage", "Gateway", "Kind", "Next", "Reply", "RequestContext",
           "RequestRecord", "RoutingTerminal", "Slots", "Stage", "check_startup", "startup_problems"]
