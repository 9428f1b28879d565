"""`state.url` picks the implementation; config errors name the key."""

from __future__ import annotations

import pytest

from sluice.config import StateConfig, parse_config
from sluice.errors import ConfigError
from sluice.state import MemoryState, RedisState, open_state


def test_memory_is_the_default_and_redis_urls_pick_redis() -> None:
    assert isinstance(open_state(StateConfig()), MemoryState)
    redis_state = open_state(StateConfig(url="redis://127.0.0.1:1/3", key_prefix="prod:"))
    assert isinstance(redis_state, RedisState) and redis_state.prefix == "prod:"  # connects only in start()


@pytest.mark.parametrize(("section", "message"), [
    ({"state": {"url": "memcached://cache:11211"}}, "state.url: expected memory:// or redis://"),
    ({"state": {"key_prefix": ""}}, "state.key_prefix"),
    ({"keys": {"reservation_ttl_s": 0}}, "keys.reservation_ttl_s"),
    ({"keys": {"colour": "red"}}, "keys.colour: unknown key"),
])
def test_bad_settings_name_their_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(section)
