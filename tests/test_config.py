"""The config file: `${ENV}` substitution, and validation errors that name the bad key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sluice.config import (
    GGUFBackendConfig,
    OpenAIBackendConfig,
    SluiceConfig,
    TransformersBackendConfig,
    default_config,
    load_config,
    parse_config,
    substitute_env,
)
from sluice.errors import ConfigError

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))
OPENAI_A = {"type": "openai", "base_url": "http://a:8000/v1"}


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "sluice.yaml"
    file.write_text(text)
    return file


def config_error(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "sluice.yaml")
    return str(caught.value)


# --- ${VAR} substitution ------------------------------------------------------------------------

def test_a_set_variable_replaces_its_reference_in_every_nested_string() -> None:
    tree = {
        "backends": {"a": {"api_key": "${KEY}", "headers": {"x-team": "team-${TEAM}"}}},
        "models": {"m": {"targets": [{"backend": "a", "model": "${UPSTREAM}"}]}},
    }
    environ = {"KEY": "sk-1", "TEAM": "ml", "UPSTREAM": "llama"}

    assert substitute_env(tree, environ=environ) == {
        "backends": {"a": {"api_key": "sk-1", "headers": {"x-team": "team-ml"}}},
        "models": {"m": {"targets": [{"backend": "a", "model": "llama"}]}},
    }


def test_a_default_is_used_only_when_the_variable_is_unset() -> None:
    tree = {"url": "${DB_URL:-sqlite:///x.db}", "key": "${KEY:-none}"}

    assert substitute_env(tree, environ={"KEY": "sk-1"}) == {"url": "sqlite:///x.db", "key": "sk-1"}


def test_an_empty_default_gives_an_empty_string() -> None:
    assert substitute_env({"master_key": "${MASTER:-}"}, environ={}) == {"master_key": ""}


def test_a_default_is_used_when_the_variable_is_set_but_empty_as_in_the_shell() -> None:
    assert substitute_env({"url": "${DB_URL:-sqlite:///x.db}"}, environ={"DB_URL": ""}) == {"url": "sqlite:///x.db"}


def test_several_references_in_one_string_are_all_replaced() -> None:
    assert substitute_env("${SCHEME}://${HOST:-localhost}:${PORT}/v1", environ={"SCHEME": "http", "PORT": "8000"}) \
        == "http://localhost:8000/v1"


def test_non_string_values_and_keys_are_left_alone() -> None:
    tree = {"${KEY}": 1, "port": 4000, "weight": 0.5, "on": True, "none": None, "list": [1, "${X:-y}"]}

    assert substitute_env(tree, environ={}) == {"${KEY}": 1, "port": 4000, "weight": 0.5, "on": True, "none": None,
                                                "list": [1, "y"]}


def test_a_substituted_value_is_not_substituted_again() -> None:
    assert substitute_env("${A}", environ={"A": "${B}", "B": "no"}) == "${B}"


def test_an_unset_variable_without_default_names_the_key_path_that_used_it() -> None:
    tree = {"backends": {"a": {"type": "openai", "api_key": "${OPENAI_API_KEY}"}}}

    with pytest.raises(ConfigError) as caught:
        substitute_env(tree, environ={})

    assert str(caught.value) == "backends.a.api_key: environment variable ${OPENAI_API_KEY} is not set"


def test_an_unset_variable_inside_a_list_names_the_index_in_its_path() -> None:
    tree = {"models": {"m": {"targets": [{"backend": "a"}, {"backend": "${SECOND}"}]}}}

    with pytest.raises(ConfigError, match=r"^models\.m\.targets\.1\.backend: .*\$\{SECOND\}"):
        substitute_env(tree, environ={})


def test_load_config_substitutes_from_the_process_environment(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TEST_PORT", "8123")
    monkeypatch.setenv("SLUICE_TEST_KEY", "sk-test")
    file = write(tmp_path, "server: {port: '${SLUICE_TEST_PORT}'}\n"
                           "backends: {a: {type: openai, base_url: 'http://a/v1', api_key: '${SLUICE_TEST_KEY}'}}\n")

    config = load_config(file)

    assert config.server.port == 8123  # a substituted string still validates as the field's type
    assert config.backends["a"].api_key == "sk-test"


def test_load_config_reports_an_unset_variable_with_its_key_path(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_TEST_UNSET", raising=False)
    file = write(tmp_path, "backends: {a: {type: openai, base_url: 'http://a/v1', api_key: '${SLUICE_TEST_UNSET}'}}\n")

    with pytest.raises(ConfigError, match=r"backends\.a\.api_key: environment variable \$\{SLUICE_TEST_UNSET\}"):
        load_config(file)


# --- validation errors name the key path ---------------------------------------------------------

def test_an_unknown_top_level_key_is_an_error_naming_it() -> None:
    message = config_error({"servers": {"port": 1}})

    assert message.startswith("sluice.yaml: invalid config")
    assert "  - servers: unknown key" in message


def test_an_unknown_nested_key_is_an_error_naming_its_full_path() -> None:
    message = config_error({"backends": {"a": OPENAI_A},
                            "models": {"m": {"targets": [{"backend": "a"}], "colour": "red"}}})

    assert "  - models.m.colour: unknown key" in message


def test_an_unknown_key_in_a_backend_is_named_without_the_type_tag() -> None:
    message = config_error({"backends": {"a": {**OPENAI_A, "base_ur": "typo"}}})

    assert "  - backends.a.base_ur: unknown key" in message
    assert "openai" not in message


def test_a_missing_required_field_is_named_with_its_path() -> None:
    message = config_error({"backends": {"a": {"type": "openai"}}})

    assert "  - backends.a.base_url: Field required" in message


def test_an_unknown_backend_type_lists_the_known_types_at_the_backend_path() -> None:
    message = config_error({"backends": {"b": {"type": "vllm", "base_url": "http://b"}}})

    line = next(line for line in message.splitlines() if line.startswith("  - "))
    assert line == ("  - backends.b: unknown backend type 'vllm'; "
                    "expected one of openai, anthropic, gguf, transformers, sentence_transformers, sim")


def test_a_backend_named_like_a_type_keeps_its_name_in_the_path() -> None:
    message = config_error({"backends": {"gguf": {"type": "openai"}}})

    assert "  - backends.gguf.base_url: Field required" in message


def test_a_value_of_the_wrong_type_is_named_with_its_path() -> None:
    message = config_error({"server": {"port": "abc"}})

    assert "  - server.port: Input should be a valid integer" in message


def test_an_out_of_range_value_is_named_with_its_path() -> None:
    message = config_error({"server": {"port": 70000}})

    assert "  - server.port: Input should be less than or equal to 65535" in message


def test_a_target_naming_an_unknown_backend_points_at_the_target_and_lists_the_configured_ones() -> None:
    message = config_error({"backends": {"a": OPENAI_A, "b": OPENAI_A},
                            "models": {"m": {"targets": [{"backend": "a"}, {"backend": "c"}]}}})

    assert "  - models.m.targets.1.backend: unknown backend 'c' (configured: a, b)" in message


def test_a_target_with_no_backends_configured_says_so() -> None:
    message = config_error({"models": {"m": {"targets": [{"backend": "a"}]}}})

    assert "  - models.m.targets.0.backend: unknown backend 'a' (configured: none)" in message


def test_a_model_needs_at_least_one_target() -> None:
    message = config_error({"models": {"m": {"targets": []}}})

    assert "  - models.m.targets: at least one target is needed (or a `router`)" in message


@pytest.mark.parametrize("sticky_key", ["user", "random", "header:x-user-id", "header:X-Tenant"])
def test_a_rollout_sticks_by_user_random_or_a_header(sticky_key: str) -> None:
    config = parse_config({"backends": {"a": OPENAI_A},
                           "models": {"m": {"targets": [{"backend": "a"}], "rollout": {"sticky_key": sticky_key}}}})

    assert config.models["m"].rollout.sticky_key == sticky_key


@pytest.mark.parametrize("sticky_key", ["usr", "header:", "header: x-user", "header:x user", "cookie:session"])
def test_any_other_sticky_key_is_an_error_naming_the_key(sticky_key: str) -> None:
    message = config_error({"backends": {"a": OPENAI_A},
                            "models": {"m": {"targets": [{"backend": "a"}], "rollout": {"sticky_key": sticky_key}}}})

    assert (f"  - models.m.rollout.sticky_key: {sticky_key!r} is not `user`, `random` or `header:<name>`"
            in message)


def test_a_nested_validator_error_is_named_with_its_full_path() -> None:
    message = config_error({"rollout": {"canary": {"steps": [50, 10]}},
                            "backends": {"a": {**OPENAI_A, "gpu_count": 2}}})

    assert "  - rollout.canary.steps.1: steps must increase (50.0 -> 10.0)" in message
    assert "  - backends.a: gpu_count is set but neither gpu nor gpu_hour_usd" in message
    assert "Value error" not in message


def test_config_is_data_parsing_runs_no_planner_and_imports_no_classifier() -> None:
    config = parse_config({  # what would not start is a start-up check's to refuse (tests/gateway/test_startup.py)
        "backends": {"a": OPENAI_A, "s": {"type": "sim", "model": "llama-3.1-8b", "gpu": "l44"}},
        "models": {"cheap": {"targets": [{"backend": "a"}]}, "strong": {"targets": [{"backend": "s"}]},
                   "auto": {"router": {"easy": "cheap", "hard": "strong", "classifier": "nope.mod:f"}}}})

    assert config.backends["s"].gpu == "l44"  # type: ignore[union-attr]
    assert config.models["auto"].router is not None and config.models["auto"].router.classifier == "nope.mod:f"


def test_every_error_in_a_file_is_reported_not_just_the_first() -> None:
    message = config_error({"server": {"port": "abc", "hots": "x"}, "store": {"log_bodies": "all"}})

    assert "server.port:" in message
    assert "server.hots: unknown key" in message
    assert "store.log_bodies:" in message


@pytest.mark.parametrize(("data", "kind"), [([1, 2], "list"), ("text", "str"), (42, "int")])
def test_a_top_level_that_is_not_a_mapping_is_an_error(data: Any, kind: str) -> None:
    assert config_error(data) == f"sluice.yaml: the top level must be a mapping, not {kind}"


def test_invalid_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    file = write(tmp_path, "models: [unclosed\n")

    with pytest.raises(ConfigError, match=r"sluice\.yaml: not valid YAML"):
        load_config(file)


def test_a_missing_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    assert str(caught.value) == f"{missing}: cannot read config (No such file or directory)"


def test_a_directory_is_an_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config \(Is a directory\)"):
        load_config(tmp_path)


def test_a_file_that_is_not_text_is_an_unreadable_config(tmp_path: Path) -> None:
    file = tmp_path / "binary.yaml"
    file.write_bytes(b"\xff\xfe\x00models: {}\n")

    with pytest.raises(ConfigError, match=r"binary\.yaml"):
        load_config(file)


def test_an_empty_file_is_an_empty_config_not_the_embedded_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))

    assert config == SluiceConfig()
    assert config.models == {}
    assert config.backends == {}


def test_a_valid_file_keeps_every_value_and_fills_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
server: {port: 8080}
backends:
  vllm-a: {type: openai, base_url: http://vllm-a:8000/v1, max_concurrency: 8}
models:
  chat:
    targets:
      - {backend: vllm-a, model: meta-llama/Llama-3.1-8B-Instruct, weight: 90}
      - {backend: vllm-a, weight: 10}
"""))

    backend = config.backends["vllm-a"]
    assert isinstance(backend, OpenAIBackendConfig)
    assert (backend.base_url, backend.max_concurrency, backend.read_timeout_s) == ("http://vllm-a:8000/v1", 8, 300.0)
    assert config.server.port == 8080
    assert config.server.host == "127.0.0.1"
    targets = config.models["chat"].targets
    assert [(t.backend, t.model, t.weight) for t in targets] == [
        ("vllm-a", "meta-llama/Llama-3.1-8B-Instruct", 90.0), ("vllm-a", None, 10.0)]


# --- upstream URLs and the server's limits ---------------------------------------------------------

def test_credentials_in_a_base_url_beside_an_api_key_are_an_error_naming_the_key_without_quoting_them() -> None:
    message = config_error({"backends": {
        "a": {"type": "openai", "base_url": "http://admin:S3cretPW@a:8000/v1?token=QTOKEN123", "api_key": "sk-1"},
        "b": {"type": "openai", "base_url": "http://admin:S3cretPW@b/v1", "headers": {"Authorization": "Basic x"}},
        "c": {"type": "anthropic", "base_url": "https://u:p@proxy", "headers": {"authorization": "Bearer x"}}}})

    assert "  - backends.a.base_url: has credentials (user:password@) and api_key is set too" in message
    assert "  - backends.b.base_url: has credentials (user:password@) and headers set Authorization too" in message
    assert "  - backends.c.base_url: has credentials" in message
    assert "S3cretPW" not in message and "QTOKEN123" not in message


def test_credentials_in_a_base_url_alone_are_accepted() -> None:
    config = parse_config({"backends": {
        "a": {"type": "openai", "base_url": "http://admin:S3cretPW@a:8000/v1?token=QTOKEN123"},
        "c": {"type": "anthropic", "base_url": "https://u:p@proxy", "api_key": "sk-ant"}}})

    assert set(config.backends) == {"a", "c"}


@pytest.mark.parametrize("base_url", ["a:8000/v1", "ftp://a/v1", "http:///v1", "http://a:99999/v1"])
def test_a_base_url_that_is_not_an_http_url_is_an_error(base_url: str) -> None:
    message = config_error({"backends": {"a": {"type": "openai", "base_url": base_url}}})

    assert "  - backends.a.base_url: " in message


def test_the_server_bounds_slow_clients_and_can_take_a_metrics_token() -> None:
    server = parse_config({"server": {"metrics_token": "scrape-me", "header_timeout_s": 0.5}}).server

    assert (server.header_timeout_s, server.body_timeout_s, server.keep_alive_timeout_s) == (0.5, 60.0, 30.0)
    assert server.max_connections == 2048 and server.metrics_token == "scrape-me"
    assert "server.body_timeout_s:" in config_error({"server": {"body_timeout_s": 0}})


# --- the embedded default and the shipped examples --------------------------------------------------

def test_load_config_without_a_path_is_the_embedded_default() -> None:
    assert load_config(None) == default_config()


def test_the_default_serves_the_local_models_and_simulated_gpus_from_sqlite() -> None:
    config = default_config()

    assert config.store.url == "sqlite:///sluice.db"
    assert set(config.models) == {"smollm2-135m-instruct", "all-minilm-l6-v2", "llama-3.1-8b-sim-h100",
                                  "llama-3.1-8b-sim-l4"}
    assert {config.backends[m.targets[0].backend].type for n, m in config.models.items() if "sim" in n} == {"sim"}
    assert all("SIMULATED" in (m.description or "") for n, m in config.models.items() if "sim" in n)
    assert [t.backend for t in config.models["smollm2-135m-instruct"].targets] == ["smollm2"]
    assert [t.backend for t in config.models["all-minilm-l6-v2"].targets] == ["minilm"]
    smollm2 = config.backends["smollm2"]
    assert isinstance(smollm2, GGUFBackendConfig)
    assert smollm2.path == "builtin:smollm2"
    assert config.backends["minilm"].type == "sentence_transformers"
    assert config.backends["minilm"].path == "builtin:all-minilm-l6-v2"  # type: ignore[union-attr]


def test_the_repository_ships_example_configs() -> None:
    assert EXAMPLES, "examples/*.yaml not found"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_config_validates_on_its_env_defaults(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", example.read_text()):
        monkeypatch.delenv(name, raising=False)  # every variable an example uses must have a default

    config = load_config(example)

    assert config.models, f"{example.name} configures no models"
    for model in config.models.values():
        assert all(target.backend in config.backends for target in model.targets)


@pytest.mark.parametrize(("section", "where"), [
    ({"structured": {"max_attempts": 0}}, "structured.max_attempts"),
    ({"structured": {"on_failure": "ignore"}}, "structured.on_failure"),
    ({"structured": {"validate": True}}, "structured.validate"),
    ({"backends": {"b": {"type": "openai", "base_url": "http://x/v1", "structured_output": "grammar"}}},
     "backends.b.structured_output"),
    ({"models": {"m": {"structured": {"enforce": "sometimes"}}}}, "models.m.structured.enforce"),
])
def test_structured_output_settings_name_the_bad_key(section: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    assert where in str(caught.value)


def test_a_models_structured_section_overrides_only_what_it_sets() -> None:
    from sluice.config import merge_structured_config

    config = parse_config({"structured": {"max_attempts": 5, "repair": False},
                           "backends": {"b": {"type": "openai", "base_url": "http://x/v1"}},
                           "models": {"m": {"targets": [{"backend": "b"}], "structured": {"max_attempts": 2}}}})
    merged = merge_structured_config(config.structured, config.models["m"].structured)
    assert (merged.max_attempts, merged.repair, merged.enforce) == (2, False, True)


# --- LoRA adapters on local runtimes ------------------------------------------------------------------


def test_a_local_backend_names_its_lora_adapter_and_its_options() -> None:
    config = parse_config({"backends": {
        "tuned": {"type": "transformers", "path": "/models/base", "adapter": "/adapters/v3", "adapter_merge": False},
        "smol": {"type": "gguf", "path": "builtin:smollm2", "lora": "/adapters/v3.gguf", "lora_scale": 0.5}}})
    tuned, smol = config.backends["tuned"], config.backends["smol"]
    assert isinstance(tuned, TransformersBackendConfig) and isinstance(smol, GGUFBackendConfig)
    assert (tuned.adapter, tuned.adapter_merge, tuned.adapter_base_check) == ("/adapters/v3", False, True)
    assert (smol.lora, smol.lora_scale) == ("/adapters/v3.gguf", 0.5)


def test_adapter_options_without_an_adapter_are_an_error_naming_the_backend() -> None:
    message = config_error({"backends": {
        "tuned": {"type": "transformers", "path": "/models/base", "adapter_base_check": False},
        "smol": {"type": "gguf", "path": "builtin:smollm2", "lora_scale": 0.5}}})
    assert "  - backends.tuned: adapter_base_check set but no adapter" in message
    assert "  - backends.smol: lora_scale set but no lora" in message
