"""`sluice config validate` and `sluice config default`, and the root command's --help and --version."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sluice import __version__
from sluice.cli import app
from sluice.config import default_config, load_config

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

GOOD = """
backends:
  vllm-a: {type: openai, base_url: http://vllm-a:8000/v1}
  claude: {type: anthropic}
models:
  chat:
    targets:
      - {backend: vllm-a, model: meta-llama/Llama-3.1-8B-Instruct, weight: 90}
      - {backend: vllm-a, weight: 10}
  claude-haiku:
    targets:
      - {backend: claude, model: claude-3-5-haiku-latest}
"""


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "sluice.yaml"
    file.write_text(text)
    return file


def test_validate_accepts_a_good_file_and_lists_its_models_and_backends(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD)

    result = runner.invoke(app, ["config", "validate", str(file)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "chat" in result.stdout
    assert "vllm-a/meta-llama/Llama-3.1-8B-Instruct (90)" in result.stdout
    assert "vllm-a/chat (10)" in result.stdout  # the upstream model defaults to the public name
    assert "claude-haiku" in result.stdout
    assert "backends: vllm-a (openai), claude (anthropic)" in result.stdout


def test_validate_exits_2_and_prints_the_bad_key_path(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD.replace("weight: 10}", "weight: 10, colour: red}"))

    result = runner.invoke(app, ["config", "validate", str(file)], env=WIDE)

    assert result.exit_code == 2
    assert "config error:" in result.stderr
    assert "models.chat.targets.1.colour: unknown key" in result.stderr
    assert "valid" not in result.stdout


def test_validate_exits_2_for_a_target_naming_an_unknown_backend(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD.replace("backend: claude,", "backend: claud,"))

    result = runner.invoke(app, ["config", "validate", str(file)], env=WIDE)

    assert result.exit_code == 2
    assert "models.claude-haiku.targets.0.backend: unknown backend 'claud'" in result.stderr


SIM_TOO_LONG = """
backends:
  sim-l4: {type: sim, model: llama-3.1-8b, gpu: l4, max_model_len: 131072}
models:
  chat: {targets: [{backend: sim-l4}]}
"""


def test_validate_rejects_a_simulated_backend_whose_kv_cache_cannot_hold_max_model_len_as_serve_does(
        tmp_path: Path) -> None:
    file = write(tmp_path, SIM_TOO_LONG)

    results = [runner.invoke(app, [*command, str(file)], env=WIDE)
               for command in (["config", "validate"], ["serve", "--config"])]

    for result in results:
        assert result.exit_code == 2
        assert "backends.sim-l4: llama-3.1-8b on 1x l4, bf16 would not start" in result.stderr
        assert "one max-model-len sequence (131072 tokens) needs 16.00 GiB of KV cache" in result.stderr
    assert "valid" not in results[0].stdout
    fitting = write(tmp_path, SIM_TOO_LONG.replace("131072", "8192"))
    assert runner.invoke(app, ["config", "validate", str(fitting)], env=WIDE).exit_code == 0


def test_validate_exits_2_for_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "absent.yaml")], env=WIDE)

    assert result.exit_code == 2
    assert "cannot read config" in result.stderr


def test_validate_prints_the_error_message_verbatim_even_when_it_contains_brackets(tmp_path: Path) -> None:
    file = write(tmp_path, "models:\n  chat: {targets: [vllm]}}\n")

    result = runner.invoke(app, ["config", "validate", str(file)], env=WIDE)

    assert result.exit_code == 2
    assert "chat: {targets: [vllm]}}" in result.stderr


def test_default_prints_yaml_that_loads_back_as_the_embedded_default(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "default"])

    assert result.exit_code == 0, result.output
    assert load_config(write(tmp_path, result.stdout)) == default_config()


def test_default_prints_the_same_yaml_in_a_narrow_terminal(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "default"], env={"COLUMNS": "30"})

    assert result.exit_code == 0, result.output
    assert load_config(write(tmp_path, result.stdout)) == default_config()


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"], env=WIDE)

    assert result.exit_code == 0, result.output
    for command in ("serve", "config", "logs", "--version"):
        assert command in result.stdout


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__


def test_validate_exits_2_for_a_guard_hook_that_does_not_import(tmp_path: Path) -> None:
    file = write(tmp_path, GOOD + "safety:\n  guards:\n    mine: {type: custom, hook: 'no_such_module_here:check'}\n"
                 "    inj: {type: injection, classifier: 'tests.safety.hooks_for_tests:missing'}\n")

    result = runner.invoke(app, ["config", "validate", str(file)], env=WIDE)

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "safety.guards.mine.hook: cannot import module 'no_such_module_here'" in message
    assert "safety.guards.inj.classifier: module 'tests.safety.hooks_for_tests' has no attribute 'missing'" in message
