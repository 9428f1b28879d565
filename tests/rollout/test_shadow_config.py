"""The `shadow` config section: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from sluice.config import parse_config
from sluice.errors import ConfigError


def test_shadow_settings_have_defaults_and_take_overrides() -> None:
    assert parse_config({}).shadow.timeout_s == 30.0
    config = parse_config({"shadow": {"timeout_s": 2.5, "queue_size": 10, "batch_size": 5, "flush_interval_s": 0.1}})
    assert (config.shadow.timeout_s, config.shadow.queue_size, config.shadow.batch_size) == (2.5, 10, 5)


@pytest.mark.parametrize(("shadow", "path"), [
    ({"timeout_s": 0}, "shadow.timeout_s"),
    ({"queue_size": -1}, "shadow.queue_size"),
    ({"sample_rate": 0.5}, "shadow.sample_rate: unknown key"),
])
def test_bad_shadow_settings_name_their_key(shadow: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        parse_config({"shadow": shadow})


def test_a_shadow_target_on_an_unknown_backend_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.rollout\.shadow\.0\.backend: unknown backend 'nope'"):
        parse_config({"backends": {"up": {"type": "openai", "base_url": "http://x/v1"}},
                      "models": {"m": {"targets": [{"backend": "up"}], "rollout": {"shadow": [{"backend": "nope"}]}}}})
