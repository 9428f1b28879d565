"""Gateways with a two-sided deployment (`blue` stable, `green` candidate) for rollout tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.polling import wait_for

__all__ = ["chat", "rollout_config", "wait_for"]


def rollout_config(upstream_url: str, store_url: str, *, strategy: str = "canary", weight: float = 0,
                   blue_model: str = "up-model", **extra: Any) -> dict[str, Any]:
    """Public model `m`: stable on backend `blue`, candidate on `green`, both the same fake upstream."""
    backend = {"type": "openai", "base_url": upstream_url + "/v1", "read_timeout_s": 5.0}
    config: dict[str, Any] = {
        "store": {"url": store_url, "log_bodies": "none", "flush_interval_s": 0.05},
        "rollout": {"poll_interval_s": 0.1},
        "backends": {"blue": backend, "green": backend},
        "models": {"m": {"targets": [{"backend": "blue", "model": blue_model}],
                         "rollout": {"strategy": strategy, "candidate_weight": weight,
                                     "candidate": [{"backend": "green", "model": "up-model"}]}}},
    }
    config.update(extra)
    return config


def chat(client: httpx.Client, user: str | None = None, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hello there"}],
                            "max_tokens": 4}
    if user is not None:
        body["user"] = user
    return client.post("/v1/chat/completions", json=body, headers=headers)
