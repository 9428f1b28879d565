"""`ShadowPair`: one request answered by the primary and mirrored to a shadow target, and how the two compare."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluice.records import RequestRecord

_WORD = re.compile(r"\w+")


@dataclass(slots=True, frozen=True)
class ShadowPair:
    """The primary's and the shadow's account of one request; comparisons are None unless both succeeded.

    Latencies share one origin, the request's arrival at the gateway: the shadow left when the primary
    started (same instant), so `shadow_e2e_s` is what the client would have waited for a whole answer.
    """

    request_id: str
    created_at: float  # unix seconds when the gateway received the request
    model: str  # public model name
    endpoint: str  # chat | completions
    primary_target: str | None
    primary_model: str | None  # upstream model name
    shadow_target: str
    shadow_model: str
    primary_stream: bool  # the primary streamed (the shadow never does)
    primary_status: int
    shadow_status: int  # 200, or the status the shadow's error would have had
    primary_error_type: str | None = None
    primary_error: str | None = None
    shadow_error_type: str | None = None  # e.g. UpstreamTimeout, UpstreamUnavailable
    shadow_error: str | None = None
    primary_e2e_s: float | None = None
    primary_ttft_s: float | None = None  # streamed primaries only
    shadow_e2e_s: float | None = None
    primary_prompt_tokens: int | None = None
    primary_completion_tokens: int | None = None
    shadow_prompt_tokens: int | None = None
    shadow_completion_tokens: int | None = None
    tokens_estimated: bool = False  # either side counted with a tokenizer (its upstream reported no usage)
    primary_cost_usd: float | None = None
    shadow_cost_usd: float | None = None
    exact_match: bool | None = None
    length_ratio: float | None = None  # shadow characters / primary characters
    similarity: float | None = None  # token Jaccard in [0, 1]
    request_body: str | None = None  # before `store.log_bodies` is applied by the writer
    primary_body: str | None = None
    shadow_body: str | None = None

    @property
    def both_ok(self) -> bool:
        return self.primary_error_type is None and self.shadow_error_type is None


def words(text: str) -> set[str]:
    """The lower-cased word tokens of a text (`\\w+`), as a set."""
    return set(_WORD.findall(text.lower()))


def token_jaccard(left: str, right: str) -> float:
    """|A ∩ B| / |A ∪ B| over word sets: 1.0 for the same words (or two texts without words), 0.0 for none shared."""
    a, b = words(left), words(right)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def length_ratio(primary: str, shadow: str) -> float | None:
    """Shadow length / primary length in characters; 1.0 when both are empty, None when only the primary is."""
    if not primary:
        return 1.0 if not shadow else None
    return len(shadow) / len(primary)


def build_pair(primary: RequestRecord, shadow: RequestRecord, primary_text: str, shadow_text: str, *,
               keep_bodies: bool) -> ShadowPair:
    """Pair two finished legs of a request (each as the `RequestRecord` the gateway would log for it)."""
    both_ok = primary.error_type is None and shadow.error_type is None
    return ShadowPair(
        request_id=primary.request_id,
        created_at=primary.created_at,
        model=primary.model,
        endpoint=primary.endpoint,
        primary_target=primary.target,
        primary_model=primary.upstream_model,
        shadow_target=shadow.target or "",
        shadow_model=shadow.upstream_model or "",
        primary_stream=primary.stream,
        primary_status=primary.status_code,
        shadow_status=shadow.status_code,
        primary_error_type=primary.error_type,
        primary_error=primary.error_message,
        shadow_error_type=shadow.error_type,
        shadow_error=shadow.error_message,
        primary_e2e_s=primary.e2e_s,
        primary_ttft_s=primary.ttft_s,
        shadow_e2e_s=shadow.e2e_s,
        primary_prompt_tokens=primary.prompt_tokens,
        primary_completion_tokens=primary.completion_tokens,
        shadow_prompt_tokens=shadow.prompt_tokens,
        shadow_completion_tokens=shadow.completion_tokens,
        tokens_estimated=primary.tokens_estimated or shadow.tokens_estimated,
        primary_cost_usd=primary.cost_usd,
        shadow_cost_usd=shadow.cost_usd,
        exact_match=primary_text == shadow_text if both_ok else None,
        length_ratio=length_ratio(primary_text, shadow_text) if both_ok else None,
        similarity=token_jaccard(primary_text, shadow_text) if both_ok else None,
        request_body=primary.request_body if keep_bodies else None,
        primary_body=primary_text if keep_bodies and primary_text else None,
        shadow_body=shadow_text if keep_bodies and shadow_text else None,
    )


__all__ = ["ShadowPair", "build_pair", "length_ratio", "token_jaccard", "words"]
