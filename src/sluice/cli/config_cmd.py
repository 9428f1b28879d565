"""`sluice config …`: validate and show configs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sluice.cli.common import console, load_or_exit

config_app = typer.Typer(help="Validate and inspect gateway config files.", no_args_is_help=True)


@config_app.command("validate")
def validate(file: Path = typer.Argument(..., help="YAML config file to check.")) -> None:
    """Check a config file; exit 2 with the bad key path when it is invalid."""
    settings = load_or_exit(file)
    table = Table(title=f"{file}: valid")
    table.add_column("model")
    table.add_column("targets (backend/model, weight)")
    for name, model in settings.models.items():
        targets = ", ".join(f"{t.backend}/{t.model or name} ({t.weight:g})" for t in model.targets)
        if model.router is not None:
            targets = f"router: easy -> {model.router.easy}, hard -> {model.router.hard} ({model.router.classifier})"
        table.add_row(name, targets)
    console.print(table)
    console.print(f"backends: {', '.join(f'{n} ({b.type})' for n, b in settings.backends.items()) or 'none'}")


@config_app.command("default")
def show_default() -> None:
    """Print the embedded default config as YAML (a starting point for your own)."""
    import yaml

    from sluice.config import default_config

    typer.echo(yaml.safe_dump(default_config().model_dump(mode="json", exclude_none=True), sort_keys=False))
