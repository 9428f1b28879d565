"""Where the bench sends and what: the endpoint URL from the forms users type, headers, and the request body."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sluice.loadtest.datasets import BenchRequest

CHAT_ENDPOINT = "/v1/chat/completions"
COMPLETIONS_ENDPOINT = "/v1/completions"
# The short forms users type for the two APIs; each is appended to the API root (the base URL's /v1).
_SHORT_FORMS = {"chat": "chat/completions", "chat/completions": "chat/completions", "completions": "completions",
                "v1/chat/completions": "chat/completions", "v1/completions": "completions"}
# vLLM `bench serve --backend` names this client speaks; the others use APIs it does not (TGI's /generate, ...).
BACKEND_ENDPOINTS = {"openai": COMPLETIONS_ENDPOINT, "vllm": COMPLETIONS_ENDPOINT, "sglang": COMPLETIONS_ENDPOINT,
                     "lmdeploy": COMPLETIONS_ENDPOINT, "scalellm": COMPLETIONS_ENDPOINT,
                     "llama.cpp": COMPLETIONS_ENDPOINT, "openai-chat": CHAT_ENDPOINT}
_RESERVED_BODY_KEYS = ("stream",)  # the timings need a stream


class TargetError(ValueError):
    """A base URL, endpoint, backend, header or extra body the bench cannot use; the message says why."""


def resolve_url(base_url: str, endpoint: str) -> str:
    """The URL to POST to. `endpoint` may be `chat`, `chat/completions`, `completions` or a full path
    (`/v1/chat/completions`); `base_url` may be the server root or its API root (`…/v1`): a full `/v1/…` path
    on a base ending in `/v1` does not repeat it, a short form goes under the base's path (or `/v1` when it has
    none). Raises `TargetError` for a URL that is not http(s) or an endpoint that is no completions API."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TargetError(f"--base-url {base_url!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:8000")
    root = base_url.strip().rstrip("/")
    path = parts.path.rstrip("/")
    key = endpoint.strip().strip("/")
    if key in _SHORT_FORMS and not endpoint.strip().startswith("/v1/"):
        url = f"{root if path else root + '/v1'}/{_SHORT_FORMS[key]}"
    else:
        full = "/" + key
        if path.endswith("/v1") and full.startswith("/v1/"):
            root = root[: -len("/v1")]
        url = root + full
    if not url.endswith("completions"):
        raise TargetError(f"--endpoint {endpoint!r} is not an OpenAI completions API (the URL would be {url}); "
                          "use chat (/v1/chat/completions) or completions (/v1/completions)")
    return url


def endpoint_is_chat(endpoint: str) -> bool:
    """Whether an `--endpoint` value (any accepted form) is the chat API."""
    return resolve_url("http://localhost", endpoint).endswith("chat/completions")


def backend_endpoint(backend: str) -> str:
    """The endpoint a vLLM `--backend` name stands for; `TargetError` for the backends whose API is not OpenAI's."""
    try:
        return BACKEND_ENDPOINTS[backend]
    except KeyError:
        raise TargetError(f"--backend {backend!r}: sluice bench speaks the OpenAI streaming API only; use openai or "
                          "vllm (/v1/completions) or openai-chat (/v1/chat/completions) — for TGI, TensorRT-LLM and "
                          "others, their OpenAI-compatible route") from None


def parse_headers(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--header 'K: V'` or vLLM's `K=V`, repeatable: split at the first `:` or `=` (a name has neither)."""
    headers = []
    for item in values:
        cut = min((i for i in (item.find(":"), item.find("=")) if i > 0), default=-1)
        name, value = item[:cut].strip(), item[cut + 1:].strip() if cut > 0 else ""
        if cut <= 0 or not name or any(c.isspace() for c in name):
            raise TargetError(f"--header {item!r} is not NAME:VALUE (or NAME=VALUE)")
        headers.append((name, value))
    return tuple(headers)


def parse_extra_body(text: str | None) -> dict[str, Any]:
    """`--extra-body '{"top_k": 20}'`: a JSON object merged into every request body (its keys win)."""
    if not text:
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TargetError(f"--extra-body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise TargetError("--extra-body must be a JSON object, e.g. '{\"top_k\": 20}'")
    if any(key in body for key in _RESERVED_BODY_KEYS):
        raise TargetError("--extra-body may not set \"stream\": the timings need a streamed answer")
    return body


@dataclass(slots=True, frozen=True)
class BenchTarget:
    base_url: str  # the server root or its API root: http://127.0.0.1:8000 or http://127.0.0.1:8000/v1
    model: str
    endpoint: str = CHAT_ENDPOINT
    api_key: str | None = None
    timeout_s: float = 6 * 3600  # as vLLM: a benchmark request may legitimately take very long
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, over Authorization
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # merged into every body, last
    ignore_eos: bool = False  # vLLM's sampling parameter: generate all max tokens
    url: str = field(init=False, compare=False)  # resolved once, at construction: a bad one fails at once

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", resolve_url(self.base_url, self.endpoint))

    @property
    def is_chat(self) -> bool:
        return self.url.endswith("chat/completions")

    @property
    def server_root(self) -> str:
        """The base URL without its API root (`/v1`): where `/metrics` lives."""
        root = self.base_url.strip().rstrip("/")
        return root[: -len("/v1")] if root.endswith("/v1") else root

    def request_headers(self, request_id: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        headers.update(self.headers)
        if request_id is not None:
            headers["x-request-id"] = request_id
        return headers

    def describe(self) -> dict[str, object]:
        """The target under vLLM's result-file names (headers left out: they may hold secrets)."""
        return {"backend": "openai-chat" if self.is_chat else "openai", "base_url": self.base_url,
                "endpoint": self.endpoint, "url": self.url, "model_id": self.model, "ignore_eos": self.ignore_eos,
                "extra_body": dict(self.extra_body) or None}


def request_body(target: BenchTarget, request: BenchRequest,
                 history: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """A streaming body that asks the server to report usage at the end, as vLLM's bench client does; chat
    sends `history` (earlier turns of a conversation) before the prompt."""
    prompt, output_len = request.prompt, request.output_len
    body: dict[str, Any] = {"model": target.model, "stream": True, "stream_options": {"include_usage": True},
                            "temperature": 0.0}
    if target.is_chat:
        body["messages"] = [*history, {"role": "user", "content": prompt}]
        body["max_completion_tokens"] = output_len
    else:
        body["prompt"] = prompt
        body["max_tokens"] = output_len
    if target.ignore_eos:
        body["ignore_eos"] = True
    body.update(target.extra_body)
    return body
