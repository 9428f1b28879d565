"""Start-up checks: what the config models (pure data) cannot know without running code — whether vLLM would
start a simulated backend, whether a router's classifier or a guard's hook imports. The composition root
(`sluice.compose`), `sluice serve` and `sluice config validate` run them, so all reject the same files, naming
the bad key path."""

from __future__ import annotations

from sluice.catalog import CatalogError, UnknownIdError
from sluice.config import SimBackendConfig, SluiceConfig
from sluice.errors import ConfigError
from sluice.plan import PlanError, startable_deployment
from sluice.routing import load_classifier
from sluice.safety import load_hook

Problem = tuple[str, str]  # (key path, message)


def startup_problems(config: SluiceConfig) -> list[Problem]:
    """Every part of `config` that would not start, in file order (backends, then models); empty when all would."""
    problems: list[Problem] = []
    for name, backend in config.backends.items():
        if isinstance(backend, SimBackendConfig):
            problems.extend(_simulated_vllm(f"backends.{name}", backend))
    for name, model in config.models.items():
        if model.router is None:
            continue
        try:
            load_classifier(model.router.classifier)  # user code (`module:attr`): imported here, not in config
        except ValueError as exc:
            problems.append((f"models.{name}.router.classifier", str(exc)))
    for name, guard in config.safety.guards.items():
        for field in ("hook", "classifier"):  # custom guards, injection classifiers: user code, imported here
            path = getattr(guard, field, None)
            if path is not None:
                where = f"safety.guards.{name}.{field}"
                try:
                    load_hook(path, where)
                except ValueError as exc:
                    problems.append((where, str(exc).removeprefix(f"{where}: ")))
    return problems


def check_startup(config: SluiceConfig, source: str = "<config>") -> None:
    """Raise `ConfigError` listing every start-up problem, in the shape of `parse_config`'s errors."""
    problems = startup_problems(config)
    if problems:
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(f"  - {path}: {message}"
                                                                   for path, message in problems))


def _simulated_vllm(where: str, backend: SimBackendConfig) -> list[Problem]:
    """What vLLM refuses at start-up: unknown ids, a KV cache too small for `max_model_len`, ..."""
    try:
        startable_deployment(backend.model, backend.gpu, **backend.engine_flags())
    except UnknownIdError as exc:
        return [(f"{where}.{'gpu' if exc.kind == 'GPU' else 'model'}", str(exc))]
    except (CatalogError, PlanError) as exc:
        return [(where, str(exc))]
    return []


__all__ = ["Problem", "check_startup", "startup_problems"]
