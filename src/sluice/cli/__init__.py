"""The `sluice` command line: one typer app, one module per command group."""

from __future__ import annotations

import typer

from sluice import __version__
from sluice.cli.bench import bench_app
from sluice.cli.config_cmd import config_app
from sluice.cli.cost import cost_app
from sluice.cli.deploy import deploy_app
from sluice.cli.evals import eval_app
from sluice.cli.keys import keys_app
from sluice.cli.logs import logs_app
from sluice.cli.models import models_app
from sluice.cli.plan import plan_app
from sluice.cli.prompts import prompts_app
from sluice.cli.safety import safety_app
from sluice.cli.serve import serve
from sluice.cli.sim import sim

app = typer.Typer(help="Sluicegate: an operations layer for LLMs in production.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("serve")(serve)
app.command("sim")(sim)
app.add_typer(bench_app, name="bench")
app.add_typer(config_app, name="config")
app.add_typer(cost_app, name="cost")
app.add_typer(deploy_app, name="deploy")
app.add_typer(eval_app, name="eval")
app.add_typer(keys_app, name="keys")
app.add_typer(logs_app, name="logs")
app.add_typer(models_app, name="models")
app.add_typer(plan_app, name="plan")
app.add_typer(prompts_app, name="prompts")
app.add_typer(safety_app, name="safety")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Sluicegate: an operations layer for LLMs in production."""


def main() -> None:
    app()


__all__ = ["app", "main"]
