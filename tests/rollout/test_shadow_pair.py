"""Comparing a primary answer with its shadow: exact match, length ratio, token Jaccard, errors on either side."""

from __future__ import annotations

import pytest

from sluice.records import RequestRecord
from sluice.rollout import TargetRef
from sluice.rollout.shadow import pick_shadow, sampled
from sluice.rollout.shadow_pair import build_pair, length_ratio, token_jaccard


def leg(**overrides: object) -> RequestRecord:
    values: dict[str, object] = dict(
        request_id="r1", created_at=1_750_000_000.0, endpoint="chat", model="m", target="up",
        backend_type="openai", upstream_model="up-model", stream=True, status_code=200, e2e_s=0.5, ttft_s=0.1,
        prompt_tokens=10, completion_tokens=4, cost_usd=0.002, request_body='{"messages":[]}',
    )
    values.update(overrides)
    return RequestRecord(**values)  # type: ignore[arg-type]


def test_token_jaccard_counts_shared_words_over_all_words_ignoring_case_and_punctuation() -> None:
    assert token_jaccard("The cat sat.", "the CAT sat") == 1.0
    assert token_jaccard("a b c", "b c d") == pytest.approx(2 / 4)
    assert token_jaccard("alpha", "beta") == 0.0
    assert token_jaccard("", "...") == 1.0  # two answers without words agree


def test_length_ratio_is_shadow_over_primary_characters() -> None:
    assert length_ratio("abcd", "ab") == 0.5
    assert length_ratio("", "") == 1.0
    assert length_ratio("", "something") is None  # infinitely longer: left out of means


def test_a_pair_of_two_answers_compares_texts_and_keeps_both_sides_figures() -> None:
    primary = leg()
    shadow = leg(target="shadow-up", upstream_model="big-model", stream=False, e2e_s=0.9, ttft_s=None,
                 prompt_tokens=10, completion_tokens=6, cost_usd=0.004)
    pair = build_pair(primary, shadow, "one two three four", "one two three five six", keep_bodies=True)
    assert (pair.primary_target, pair.shadow_target, pair.shadow_model) == ("up", "shadow-up", "big-model")
    assert pair.primary_stream is True and pair.primary_ttft_s == 0.1
    assert (pair.primary_e2e_s, pair.shadow_e2e_s) == (0.5, 0.9)
    assert (pair.primary_completion_tokens, pair.shadow_completion_tokens) == (4, 6)
    assert (pair.primary_cost_usd, pair.shadow_cost_usd) == (0.002, 0.004)
    assert pair.exact_match is False
    assert pair.length_ratio == pytest.approx(len("one two three five six") / len("one two three four"))
    assert pair.similarity == pytest.approx(3 / 6)
    assert (pair.primary_body, pair.shadow_body) == ("one two three four", "one two three five six")
    assert pair.request_body == '{"messages":[]}'


def test_a_failed_shadow_is_recorded_with_its_error_and_no_comparison() -> None:
    shadow = leg(status_code=504, error_type="UpstreamTimeout", error_message="shadow call exceeded 1 s",
                 prompt_tokens=None, completion_tokens=None, cost_usd=None)
    pair = build_pair(leg(), shadow, "an answer", "", keep_bodies=True)
    assert (pair.shadow_status, pair.shadow_error_type) == (504, "UpstreamTimeout")
    assert pair.exact_match is None and pair.similarity is None and pair.length_ratio is None
    assert pair.shadow_body is None and not pair.both_ok


def test_bodies_stay_out_of_a_pair_when_the_store_keeps_none() -> None:
    pair = build_pair(leg(), leg(), "same", "same", keep_bodies=False)
    assert pair.exact_match is True and pair.similarity == 1.0
    assert (pair.request_body, pair.primary_body, pair.shadow_body) == (None, None, None)


def test_sampling_is_a_stable_function_of_the_request_id_close_to_the_rate() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    chosen = [rid for rid in ids if sampled("m", rid, 0.1)]
    assert chosen == [rid for rid in ids if sampled("m", rid, 0.1)]  # same ids, same decision
    assert 0.09 < len(chosen) / len(ids) < 0.11
    assert set(chosen) <= {rid for rid in ids if sampled("m", rid, 0.5)}  # a higher rate keeps everyone sampled
    assert all(sampled("m", rid, 1.0) for rid in ids[:100])
    assert not any(sampled("m", rid, 0.0) for rid in ids[:100])


def test_several_shadow_replicas_share_requests_by_weight() -> None:
    refs = (TargetRef("a", "x", 75.0), TargetRef("b", "x", 25.0))
    picks = [pick_shadow(refs, "m", f"req-{i}").backend for i in range(8000)]
    assert 0.72 < picks.count("a") / len(picks) < 0.78
    assert pick_shadow(refs, "m", "req-1") == pick_shadow(refs, "m", "req-1")
