"""Helpers shared by CLI commands: the rich console and config loading with clear errors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from sluice.config import SluiceConfig, load_config
from sluice.errors import ConfigError

console = Console()
err_console = Console(stderr=True)


def load_or_exit(path: Path | None) -> SluiceConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        err_console.print(f"[red]config error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
