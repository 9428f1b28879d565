"""`RequestContext`: the mutable state of one request while it runs; it ends as a `RequestRecord`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sluice.backends import ChatCompletionRequest, CompletionRequest, Endpoint, Usage
from sluice.cost import count_message_tokens, count_prompt_tokens, count_text_tokens
from sluice.errors import SluiceError
from sluice.records import Json, RequestRecord
from sluice.telemetry import StreamTimer, tpot_s

if TYPE_CHECKING:
    from sluice.routing import Target


class RequestContext:
    __slots__ = ("annotations", "arrival", "attempts", "body_text", "cache_hit", "client_ip", "client_request_id",
                 "cost_usd", "created_at", "endpoint", "error", "finish_reason", "headers", "in_flight", "key", "model",
                 "queue_s", "raw_body", "request", "request_id", "reservation", "route_role", "span", "stage_s",
                 "status_code", "stream", "target", "team", "text_parts", "timer", "upstream_s", "usage", "user")

    def __init__(self, request_id: str, endpoint: Endpoint, client_ip: str | None, *,
                 client_request_id: str | None = None) -> None:
        self.request_id = request_id  # the gateway's own id, unique (records/request_ids.py)
        self.client_request_id = client_request_id  # the client's x-request-id, if it sent a usable one
        self.endpoint = endpoint
        self.client_ip = client_ip
        self.arrival = perf_counter()
        self.created_at = time.time()
        self.timer = StreamTimer(self.arrival)
        self.model = ""
        self.stream = False
        self.user: str | None = None
        self.request: ChatCompletionRequest | CompletionRequest | None = None
        self.body_text: str | None = None
        self.raw_body: dict[str, Any] | None = None  # the parsed JSON body, forwarded as-is where possible
        self.target: Target | None = None
        self.queue_s = 0.0
        self.upstream_s = 0.0
        self.usage: Usage | None = None
        self.text_parts: list[str] = []
        self.finish_reason: str | None = None
        self.status_code = 200
        self.error: SluiceError | None = None
        self.span: Any = None
        self.in_flight: Any = None  # the in-flight gauge child to decrement when recorded
        self.headers: Mapping[str, str] = {}  # the client's request headers (lower-case names)
        self.key: Any = None  # the virtual key that authenticated the request (cost/), None for master/no key
        self.team: str | None = None
        self.reservation: Any = None  # what admission reserved against budgets/limits, settled at the end
        self.cache_hit: str | None = None  # "exact" | "semantic" when answered from the cache
        self.cost_usd: float | None = None
        self.route_role: str | None = None  # which side of a rollout served it: stable | candidate
        self.attempts = 0  # upstream attempts made (retries and fallbacks included)
        self.annotations: dict[str, Json] | None = None  # what stages add (annotate); no dict until one does
        self.stage_s: dict[str, float] = {}  # each stage's own time (gateway/chain.py)

    def annotate(self, key: str, value: Json) -> None:
        """Attach a JSON value to the request's record under `<concern>.<name>` (docs/request-log.md lists
        the keys); a later value for the same key replaces the earlier one."""
        if "." not in key:
            raise ValueError(f"annotation keys are namespaced `<concern>.<name>`, not {key!r}")
        if self.annotations is None:
            self.annotations = {}
        self.annotations[key] = value

    def fail(self, error: SluiceError, *, status_code: int | None = None) -> None:
        self.error = error
        self.status_code = error.status_code if status_code is None else status_code

    def elapsed_s(self) -> float:
        return perf_counter() - self.arrival

    def overhead_s(self, e2e_s: float) -> float:
        return max(0.0, e2e_s - self.upstream_s - self.queue_s)

    def finish(self, *, keep_bodies: bool) -> RequestRecord:
        e2e = self.elapsed_s()
        text = "".join(self.text_parts)
        prompt_tokens, completion_tokens, estimated = self._token_counts(text)
        ttft = self.timer.ttft_s
        error = self.error
        target = self.target
        return RequestRecord(
            request_id=self.request_id,
            created_at=self.created_at,
            endpoint=self.endpoint,
            model=self.model,
            target=target.name if target else None,
            backend_type=target.backend.type if target else None,
            upstream_model=target.upstream_model if target else None,
            stream=self.stream,
            status_code=self.status_code,
            client_request_id=self.client_request_id,
            error_class=str(error.error_class) if error else None,
            error_type=type(error).__name__ if error else None,
            error_message=error.message if error else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=self.usage.cached_tokens if self.usage else None,
            reasoning_tokens=self.usage.reasoning_tokens if self.usage else None,
            tokens_estimated=estimated,
            finish_reason=self.finish_reason,
            ttft_s=ttft,
            tpot_s=tpot_s(e2e, ttft, completion_tokens) if self.stream else None,
            itl_s=tuple(self.timer.gaps),
            e2e_s=e2e,
            queue_s=self.queue_s,
            upstream_s=self.upstream_s,
            overhead_s=self.overhead_s(e2e),
            user=self.user,
            client_ip=self.client_ip,
            request_body=self.body_text if keep_bodies else None,
            response_body=text if keep_bodies and text else None,
            key_id=getattr(self.key, "id", None),
            team=self.team,
            cost_usd=self.cost_usd,
            cache_hit=self.cache_hit,
            route_role=self.route_role,
            attempts=self.attempts,
            annotations=self.annotations or {},  # handed over, not copied: the context is done with it
        )

    def _token_counts(self, text: str) -> tuple[int | None, int | None, bool]:
        if self.usage is not None:
            return self.usage.prompt_tokens, self.usage.completion_tokens, False
        request = self.request
        if request is None or self.target is None or (self.error is not None and not text):
            return None, None, False
        model = self.target.upstream_model
        if isinstance(request, ChatCompletionRequest):
            prompt = count_message_tokens(request.messages, model)
        else:
            prompt = count_prompt_tokens(request.prompt, model)
        return prompt, count_text_tokens(text, model), True
