"""Guards from their config: one place that knows every guard type (the composition root calls it)."""

from __future__ import annotations

from sluice.config import (
    CustomGuardConfig,
    GuardConfig,
    InjectionGuardConfig,
    KeywordGuardConfig,
    LlamaGuardConfig,
    PIIGuardConfig,
    RegexGuardConfig,
    ToxicityGuardConfig,
)
from sluice.errors import ConfigError
from sluice.safety.guards import CalledGuard, Guard, KeywordGuard, PIIGuard, RegexGuard


def build_guard(name: str, config: GuardConfig) -> Guard | CalledGuard:
    """The guard `safety.guards.<name>` describes; a ConfigError naming the key if it cannot be built (a hook
    that does not import, a presidio entity it does not know)."""
    try:
        return _build(name, config)
    except ValueError as exc:
        message = str(exc)
        where = f"safety.guards.{name}"
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def _build(name: str, config: GuardConfig) -> Guard | CalledGuard:
    if isinstance(config, KeywordGuardConfig):
        return KeywordGuard(name, config)
    if isinstance(config, RegexGuardConfig):
        return RegexGuard(name, config)
    if isinstance(config, PIIGuardConfig):
        presidio = None
        if config.presidio:
            from sluice.safety.presidio import PresidioDetector

            presidio = PresidioDetector(config.entities, config.min_score)
        return PIIGuard(name, config, presidio)
    if isinstance(config, ToxicityGuardConfig):
        from sluice.safety.toxicity import ToxicityGuard

        return ToxicityGuard(name, config)
    if isinstance(config, InjectionGuardConfig):
        from sluice.safety.injection import build_injection_guard

        return build_injection_guard(name, config)
    if isinstance(config, CustomGuardConfig):
        from sluice.safety.hooks import CustomGuard

        return CustomGuard(name, config)
    if isinstance(config, LlamaGuardConfig):
        from sluice.safety.llama_guard import LlamaGuard

        return LlamaGuard(name, config)
    raise ValueError(f"unknown guard type {type(config).__name__}")


def is_called(guard: Guard | CalledGuard) -> bool:
    """Awaited with a deadline (a model, a hook), rather than checked in the event loop."""
    return hasattr(guard, "judge")


__all__ = ["build_guard", "is_called"]
