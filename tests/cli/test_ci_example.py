"""The shipped GitHub Actions workflow (examples/github-actions/): valid against GitHub's workflow schema, and every
`sluice …` command it runs is one the CLI accepts — commands, options and their values — so the example cannot
drift from the CLI unnoticed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.core import TyperCommand, TyperGroup

from sluice.cli import app

WORKFLOW = Path(__file__).parents[2] / "examples" / "github-actions" / "eval-gate-canary.yml"
SAMPLE_ENV = {"MODEL": "customer-support", "VERSION": "3", "DEPLOYMENT": "chat", "GITHUB_RUN_ID": "4242",
              "GITHUB_ACTOR": "octocat"}


def sluice_commands() -> list[list[str]]:
    """Each `sluice` command line of the workflow's `run:` steps, continuation lines joined, the job's variables
    given sample values, split as a shell would."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for name, value in SAMPLE_ENV.items():
                script = script.replace(f"${name}", value)
            commands += [shlex.split(line)[1:] for line in script.splitlines() if line.strip().startswith("sluice ")]
    return commands


def test_the_workflow_is_valid_against_githubs_schema() -> None:
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                              str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_it_follows_the_pipeline_gate_canary_promote_or_roll_back() -> None:
    verbs = [" ".join(command[:2]) for command in sluice_commands()]
    assert verbs.index("deploy set-candidate") < verbs.index("eval gate") < verbs.index("deploy start-canary")
    assert verbs.index("deploy start-canary") < verbs.index("models alias")
    assert "deploy rollback" in verbs
    gate = next(command for command in sluice_commands() if command[:2] == ["eval", "gate"])
    assert "--baseline" in gate and "--max-regression" in gate
    canary = next(command for command in sluice_commands() if command[:2] == ["deploy", "start-canary"])
    assert "--wait" in canary and canary[canary.index("--steps") + 1].startswith("10,")


@pytest.mark.parametrize("command", sluice_commands(), ids=lambda command: " ".join(command[:2]))
def test_every_sluice_command_parses(command: list[str]) -> None:
    """Parsed as the CLI parses it, every value converted and checked, without running the command."""
    found: TyperCommand | TyperGroup | None = typer.main.get_command(app)  # type: ignore[assignment]
    context = typer.Context(found, info_name="sluice")  # type: ignore[arg-type]
    args = list(command)
    while isinstance(found, TyperGroup):
        name, *args = args
        found = found.get_command(context, name)  # type: ignore[assignment]
        assert found is not None, f"sluice {shlex.join(command)}: unknown command {name!r}"
        context = typer.Context(found, info_name=name, parent=context)
    assert isinstance(found, TyperCommand)
    found.make_context(context.info_name, args, parent=context.parent)  # raises on a bad option or value


def test_the_parse_check_catches_bad_options_and_values() -> None:
    for bad, problem in ((["eval", "gate", "s.yaml", "--bogus", "1"], "No such option: --bogus"),
                         (["deploy", "start-canary", "chat", "--interval", "soon"], "unable to parse string"),
                         (["models", "alias", "m", "production", "three"], "unable to parse string as an integer"),
                         (["eval", "gate", "s.yaml", "--repeats", "0"], "greater than or equal to 1")):
        with pytest.raises(typer.BadParameter.__mro__[1], match=problem):  # typer's own click UsageError
            test_every_sluice_command_parses(bad)
