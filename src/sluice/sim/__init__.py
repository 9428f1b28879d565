"""Inference simulator: a vLLM-shaped continuous-batching engine on the planner's cost model, and its server.

In-process use (no HTTP): `SimulatorBackend(name, build_simulator("llama-3.1-8b", "h100-sxm"))` is a
gateway `Backend`; or `await sim.start()` and `sim.stream(call)` / `sim.complete(call)` directly. What-if runs on a
virtual clock: `simulate(cost, [EngineRequest(...), ...])`.
"""

from sluice.sim.async_engine import AsyncEngine, EngineFailed
from sluice.sim.backend import SimulatorBackend
from sluice.sim.clock import Clock, MonotonicClock, VirtualClock
from sluice.sim.cost import LinearStepCost, StepCost
from sluice.sim.engine import EngineCore, EngineRequest, EngineStep, RequestTiming, TokenEvent
from sluice.sim.errors import (
    BadRequest,
    ConnectionRefused,
    ContextLengthExceeded,
    InjectedError,
    ModelNotServed,
    SimError,
    StreamDropped,
)
from sluice.sim.faults import (
    DegradedFault,
    DropFault,
    ErrorFault,
    FaultPlan,
    LatencySpikeFault,
    RefuseFault,
    StallFault,
    combine,
    parse_fault_flag,
)
from sluice.sim.kv_cache import BLOCK_SIZE, KVCacheManager
from sluice.sim.planner import PlannerStepCost, build_simulator, planner_cost, simulator_backend
from sluice.sim.runner import make_server
from sluice.sim.scheduler import Scheduler, SchedulerConfig
from sluice.sim.server import create_app
from sluice.sim.simulator import Admission, Answer, Simulator
from sluice.sim.timings import ServedTimings, TimingLog, parse_timings
from sluice.sim.virtual import SimulationReport, simulate

__all__ = [
    "BLOCK_SIZE",
    "Admission",
    "Answer",
    "AsyncEngine",
    "BadRequest",
    "Clock",
    "ConnectionRefused",
    "ContextLengthExceeded",
    "DegradedFault",
    "DropFault",
    "EngineCore",
    "EngineFailed",
    "EngineRequest",
    "EngineStep",
    "ErrorFault",
    "FaultPlan",
    "InjectedError",
    "KVCacheManager",
    "LatencySpikeFault",
    "LinearStepCost",
    "ModelNotServed",
    "MonotonicClock",
    "PlannerStepCost",
    "RefuseFault",
    "RequestTiming",
    "Scheduler",
    "SchedulerConfig",
    "ServedTimings",
    "SimError",
    "SimulationReport",
    "Simulator",
    "SimulatorBackend",
    "StallFault",
    "StepCost",
    "StreamDropped",
    "TimingLog",
    "TokenEvent",
    "VirtualClock",
    "build_simulator",
    "combine",
    "create_app",
    "make_server",
    "parse_fault_flag",
    "parse_timings",
    "planner_cost",
    "simulate",
    "simulator_backend",
]
