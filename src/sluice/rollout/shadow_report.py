"""The shadow report: how a model's shadow target compares with its primary over a window of pairs."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.rollout import shadow_store
from sluice.rollout.shadow_pair import ShadowPair

DEFAULT_SINCE = "24h"
MAX_PAIRS = 100_000  # newest pairs a report reads; `truncated` says when there were more
PREVIEW_CHARS = 160
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(slots=True, frozen=True)
class Latency:
    count: int
    p50_s: float | None
    p99_s: float | None
    mean_s: float | None


@dataclass(slots=True, frozen=True)
class Disagreement:
    request_id: str
    created_at: float
    similarity: float
    length_ratio: float | None
    exact_match: bool
    primary_preview: str | None  # None when bodies are not stored (`store.log_bodies: none`)
    shadow_preview: str | None


@dataclass(slots=True, frozen=True)
class ShadowReport:
    """Latency over pairs where both sides answered; token, cost and text comparisons likewise."""

    model: str
    since: float | None
    pairs: int
    truncated: bool  # more than MAX_PAIRS pairs in the window: the newest were read
    compared: int  # pairs where both sides answered
    primary_errors: int
    shadow_errors: int
    shadow_error_rate: float | None
    shadow_errors_by_type: dict[str, int]
    primary_e2e: Latency
    shadow_e2e: Latency
    primary_ttft: Latency  # streamed primaries only
    primary_completion_tokens_mean: float | None
    shadow_completion_tokens_mean: float | None
    completion_tokens_delta_mean: float | None  # shadow − primary, per pair
    primary_prompt_tokens_mean: float | None
    shadow_prompt_tokens_mean: float | None
    priced: int  # compared pairs with a cost on both sides
    primary_cost_usd: float | None  # total over the priced pairs
    shadow_cost_usd: float | None
    cost_delta_usd: float | None  # shadow − primary, total over the priced pairs
    exact_match_rate: float | None
    length_ratio_mean: float | None
    similarity_mean: float | None
    worst: list[Disagreement] = field(default_factory=list)


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`30m`, `24h`, `7d`, `2w` (ago), an ISO-8601 time (UTC unless it says), or unix seconds; None for all."""
    if text is None or not text.strip() or text.strip() == "all":
        return None
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"since: expected a duration like 30m, 24h, 7d, an ISO-8601 time or unix seconds, "
                         f"not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _latency(values: Sequence[float]) -> Latency:
    if not values:
        return Latency(0, None, None, None)
    data = np.asarray(values, dtype=float)  # numpy's linear percentiles, as the bench reports
    return Latency(len(values), float(np.percentile(data, 50)), float(np.percentile(data, 99)), float(data.mean()))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def summarize(model: str, pairs: Sequence[ShadowPair], *, since: float | None = None, worst: int = 5,
              truncated: bool = False) -> ShadowReport:
    """The report over `pairs` (any order). `worst` lowest-similarity pairs are listed, bodies previewed."""
    compared = [pair for pair in pairs if pair.both_ok]
    shadow_failed = [pair for pair in pairs if pair.shadow_error_type is not None]

    def tokens(name: str) -> list[float]:
        return [getattr(p, name) for p in compared if getattr(p, name) is not None]

    both_completion = [p for p in compared
                       if p.primary_completion_tokens is not None and p.shadow_completion_tokens is not None]
    priced = [p for p in compared if p.primary_cost_usd is not None and p.shadow_cost_usd is not None]
    primary_cost = sum(p.primary_cost_usd for p in priced) if priced else None  # type: ignore[misc]
    shadow_cost = sum(p.shadow_cost_usd for p in priced) if priced else None  # type: ignore[misc]
    scored = [p for p in compared if p.similarity is not None]
    ranked = sorted((p for p in scored if not p.exact_match), key=lambda p: (p.similarity, p.request_id))
    return ShadowReport(
        model=model,
        since=since,
        pairs=len(pairs),
        truncated=truncated,
        compared=len(compared),
        primary_errors=sum(1 for p in pairs if p.primary_error_type is not None),
        shadow_errors=len(shadow_failed),
        shadow_error_rate=len(shadow_failed) / len(pairs) if pairs else None,
        shadow_errors_by_type=dict(Counter(p.shadow_error_type for p in shadow_failed).most_common()),
        primary_e2e=_latency([p.primary_e2e_s for p in compared if p.primary_e2e_s is not None]),
        shadow_e2e=_latency([p.shadow_e2e_s for p in compared if p.shadow_e2e_s is not None]),
        primary_ttft=_latency([p.primary_ttft_s for p in compared if p.primary_ttft_s is not None]),
        primary_completion_tokens_mean=_mean(tokens("primary_completion_tokens")),
        shadow_completion_tokens_mean=_mean(tokens("shadow_completion_tokens")),
        completion_tokens_delta_mean=_mean([p.shadow_completion_tokens - p.primary_completion_tokens  # type: ignore[operator]
                                            for p in both_completion]),
        primary_prompt_tokens_mean=_mean(tokens("primary_prompt_tokens")),
        shadow_prompt_tokens_mean=_mean(tokens("shadow_prompt_tokens")),
        priced=len(priced),
        primary_cost_usd=primary_cost,
        shadow_cost_usd=shadow_cost,
        cost_delta_usd=None if primary_cost is None or shadow_cost is None else shadow_cost - primary_cost,
        exact_match_rate=sum(1 for p in compared if p.exact_match) / len(compared) if compared else None,
        length_ratio_mean=_mean([p.length_ratio for p in compared if p.length_ratio is not None]),
        similarity_mean=_mean([p.similarity for p in scored]),  # type: ignore[misc]
        worst=[Disagreement(p.request_id, p.created_at, p.similarity, p.length_ratio, bool(p.exact_match),  # type: ignore[arg-type]
                            _preview(p.primary_body), _preview(p.shadow_body))
               for p in ranked[:worst]],
    )


async def load_report(engine: AsyncEngine, model: str, *, since: float | None = None,
                      worst: int = 5) -> ShadowReport:
    """Read the window's pairs (without bodies), summarise, then fetch the bodies of the worst few."""
    pairs = await shadow_store.recent(engine, model=model, since=since, limit=MAX_PAIRS + 1, bodies=False)
    truncated = len(pairs) > MAX_PAIRS
    report = summarize(model, pairs[:MAX_PAIRS], since=since, worst=worst, truncated=truncated)
    if not report.worst:
        return report
    with_bodies = {p.request_id: p for p in await shadow_store.get(engine, [w.request_id for w in report.worst])}
    worst_full = []
    for item in report.worst:
        pair = with_bodies.get(item.request_id)
        worst_full.append(item if pair is None else Disagreement(
            item.request_id, item.created_at, item.similarity, item.length_ratio, item.exact_match,
            _preview(pair.primary_body), _preview(pair.shadow_body)))
    return replace(report, worst=worst_full)


def report_to_json(report: ShadowReport) -> dict[str, Any]:
    """The report as JSON-ready data, plus `since_iso` (UTC) for humans and jq."""
    data = asdict(report)
    data["since_iso"] = None if report.since is None else dt.datetime.fromtimestamp(report.since, dt.UTC).isoformat()
    return data


__all__ = ["DEFAULT_SINCE", "MAX_PAIRS", "Disagreement", "Latency", "ShadowReport", "load_report",
           "parse_since", "report_to_json", "summarize"]
