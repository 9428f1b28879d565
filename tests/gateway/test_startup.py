"""Start-up checks (gateway/startup.py): what the config models, pure data, leave to the composition root —
a simulated backend vLLM would refuse to start, a router classifier that does not import."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sluice.config import default_config, parse_config
from sluice.errors import ConfigError
from sluice.gateway.startup import check_startup, startup_problems


def startup_error(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        check_startup(parse_config(data, "sluice.yaml"), "sluice.yaml")
    return str(caught.value)


def test_a_simulated_backend_vllm_would_refuse_is_an_error_naming_the_backend() -> None:
    too_long = {"type": "sim", "model": "llama-3.1-8b", "gpu": "l4", "max_model_len": 131072}
    message = startup_error({"backends": {"s": too_long, "t": {"type": "sim", "model": "llama-9", "gpu": "l4"},
                                          "u": {"type": "sim", "model": "llama-3.1-8b", "gpu": "l44"}}})

    assert message.startswith("sluice.yaml: invalid config\n")
    assert re.search(r"  - backends\.s: llama-3\.1-8b on 1x l4, bf16 would not start: one max-model-len "
                     r"sequence \(131072 tokens\) needs .* of KV cache", message)
    assert "  - backends.t.model: unknown model 'llama-9'" in message
    assert "  - backends.u.gpu: unknown GPU 'l44'; did you mean l4" in message


def test_a_router_classifier_that_does_not_import_is_an_error_naming_its_key() -> None:
    message = startup_error({"backends": {"a": {"type": "openai", "base_url": "http://a/v1"}},
                             "models": {"cheap": {"targets": [{"backend": "a"}]},
                                        "strong": {"targets": [{"backend": "a"}]},
                                        "auto": {"router": {"easy": "cheap", "hard": "strong",
                                                            "classifier": "nope.mod:f"}}}})

    assert "  - models.auto.router.classifier: cannot import 'nope.mod:f'" in message


def test_the_embedded_default_would_start() -> None:
    assert startup_problems(default_config()) == []
