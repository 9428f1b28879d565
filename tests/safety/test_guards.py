"""Rule guards on their own: normalisation against evasions, allow-lists, verdicts that never carry user text."""

from __future__ import annotations

import pytest

from sluice.config import KeywordGuardConfig, RegexGuardConfig, parse_config
from sluice.errors import ConfigError
from sluice.safety import KeywordGuard, RegexGuard, normalise


def keyword(*words: str, allow: tuple[str, ...] = (), **settings: str) -> KeywordGuard:
    return KeywordGuard("kw", KeywordGuardConfig(type="keyword", words=list(words), allow=list(allow), **settings))


@pytest.mark.parametrize("text", ["B0MB", "b\u200bomb", "ｂｏｍｂ", "b.o.m.b", "how to build a b o m b",
                                  "a b-o-m-b please", "BoMb!", "pipe bomb", "bo\u00admb"])
def test_keyword_sees_through_case_unicode_zero_width_leetspeak_and_spacing(text: str) -> None:
    verdict = keyword("bomb", category="weapons").check(text, "input")
    assert verdict is not None
    assert (verdict.guard, verdict.layer, verdict.category, verdict.rule) == ("kw", "keyword", "weapons", "bomb")
    assert verdict.blocks and verdict.direction == "input"


@pytest.mark.parametrize("text", ["bombastic prose", "a bombe glacée", "the tombola", "abomb", ""])
def test_keyword_matches_whole_words_only(text: str) -> None:
    assert keyword("bomb").check(text, "output") is None


def test_phrases_and_allow_lists() -> None:
    guard = keyword("kill", "credit card dump", allow=("kill the process", "kill -9"))
    assert guard.check("how do I kill the process on port 80", "input") is None
    assert guard.check("KILL   the process, then kill -9 it", "input") is None
    found = guard.check("kill the process, then kill him", "input")
    assert found is not None and found.rule == "kill"  # the second `kill` is not inside an allowed phrase
    found = guard.check("selling a Credit-Card dump", "input")
    assert found is not None and found.rule == "credit card dump"


def test_monitor_mode_and_flag_decide_but_do_not_block() -> None:
    for settings in ({"mode": "monitor"}, {"action": "flag"}):
        verdict = keyword("bomb", **settings).check("bomb", "input")
        assert verdict is not None and not verdict.blocks


def test_regex_reports_the_pattern_index_never_the_matched_text() -> None:
    guard = RegexGuard("secrets", RegexGuardConfig(type="regex", category="secrets",
                                                   patterns=[r"sk-[a-z0-9]{20,}", r"AKIA[0-9A-Z]{16}",
                                                             r"(?i)password\s*[:=]"],
                                                   allow=[r"AKIAIOSFODNN7EXAMPLE"]))
    verdict = guard.check("my key is AKIAABCDEFGHIJKLMNOP", "output")
    assert verdict is not None and verdict.rule == "pattern[1]"
    assert "AKIA" not in str(verdict.to_json())
    assert guard.check("the docs use AKIAIOSFODNN7EXAMPLE as an example", "output") is None
    assert guard.check("nothing secret", "output") is None
    assert guard.check("akiaabcdefghijklmnop", "output") is None  # as written: case matters by default
    found = guard.check("PASSWORD = hunter2", "output")  # ... unless a pattern says (?i)
    assert found is not None and found.rule == "pattern[2]"


def test_normalise_keeps_plain_text_readable() -> None:
    assert normalise("Hello   W0rld\u200b!") == "hello world!"  # `0` reads as `o` (leetspeak), spaces collapse


@pytest.mark.parametrize(("guard", "message"), [
    ({"type": "regex", "patterns": ["("]}, "is not a valid regular expression"),
    ({"type": "regex", "patterns": ["x?"]}, "matches empty text"),
    ({"type": "keyword", "words": []}, "at least 1"),
    ({"type": "keyword", "words": ["  "]}, "entry 0 is blank"),
    ({"type": "keyword", "words": ["x"], "category": "Bad Category"}, "lower-case"),
    ({"type": "nope"}, "unknown guard type 'nope'; expected one of keyword, regex"),
])
def test_bad_guard_config_names_the_key(guard: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"safety\.guards\.g") as error:
        parse_config({"safety": {"guards": {"g": guard}}})
    assert message in str(error.value)


def test_a_model_may_only_list_defined_guards_once() -> None:
    base = {"backends": {"a": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "safety": {"guards": {"g": {"type": "keyword", "words": ["x"]}}}}
    with pytest.raises(ConfigError, match=r"models\.m\.guards\.0: unknown guard 'h' \(defined: g\)"):
        parse_config({**base, "models": {"m": {"targets": [{"backend": "a"}], "guards": ["h"]}}})
    with pytest.raises(ConfigError, match=r"models\.m\.guards\.1: 'g' is listed twice"):
        parse_config({**base, "models": {"m": {"targets": [{"backend": "a"}], "guards": ["g", "g"]}}})


class _Ctx:
    """What the stage reads and writes of a request."""

    def __init__(self) -> None:
        self.endpoint, self.stream, self.model = "chat", True, "m"
        self.annotations: dict[str, object] | None = None

    def annotate(self, key: str, value: object) -> None:
        self.annotations = {**(self.annotations or {}), key: value}


def run_stream(texts: list[str], hold_back: int, window: int = 64) -> tuple[list[str | None], _Ctx]:
    import asyncio

    from prometheus_client import CollectorRegistry

    from sluice.backends import Chunk
    from sluice.safety import GuardStage, SafetyMetrics

    guards = [keyword("bomb")]
    stage = GuardStage(guards, {"kw": guards[0]}, SafetyMetrics(CollectorRegistry()), window_chars=window,
                       hold_back_chars=hold_back)
    ctx = _Ctx()

    async def source():  # type: ignore[no-untyped-def]
        for text in texts:
            yield Chunk({"id": "c", "choices": [{"index": 0, "delta": {"content": text}}]}, text=text,
                        has_output=True)

    async def read() -> list[str | None]:
        return [chunk.text or chunk.finish_reason
                async for chunk in stage._stream(ctx, source(), stage.plan)]  # type: ignore[arg-type]

    return asyncio.run(read()), ctx


def test_a_stream_is_cut_before_a_split_match_reaches_the_client() -> None:
    out, ctx = run_stream(["The ", "bo", "mb", " is here"], hold_back=4)
    assert out == ["content_filter"]  # "The " and "bo" were still held back when "mb" completed the word
    assert ctx.annotations is not None and ctx.annotations["guard.output"][0]["rule"] == "bomb"  # type: ignore[index]


def test_a_clean_stream_comes_out_whole_and_in_order() -> None:
    texts = ["The ", "sand", "bomber ", "is ", "a ", "long ", "made-up ", "word, ", "not ", "a ", "listed ", "one."]
    for hold_back in (0, 4, 1000):
        out, ctx = run_stream(texts, hold_back=hold_back, window=16)
        assert out == texts and ctx.annotations is None


def test_the_tail_check_never_reads_half_a_word() -> None:
    from sluice.safety.running import _tail

    assert _tail("short", 10) == "short"
    assert _tail("the sandbomber is", 12) == " is"  # `ndbomber` would read as a word that is not there
    assert _tail("xxxxxxxxxxxxsandbomber", 10) == ""
    out, _ = run_stream(["x" * 60, "sand", "bomber"], hold_back=0, window=512)
    assert out == ["x" * 60, "sand", "bomber"]


def test_pii_guard_names_the_kinds_it_found_and_masks_them() -> None:
    from sluice.config import PIIGuardConfig
    from sluice.safety import PIIGuard

    guard = PIIGuard("pii", PIIGuardConfig(type="pii"))
    text = "Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111."
    verdict = guard.check(text, "input")
    assert verdict is not None and verdict.rule == "email,phone,card" and verdict.action == "mask"
    assert "jane" not in str(verdict.to_json())
    assert guard.mask(text) == "Mail [EMAIL] or call [PHONE]; card [CARD]."
    assert guard.check("The meeting is at 10:30 in room 4.", "input") is None
    assert guard.check("Already masked: [EMAIL]", "input") is None  # placeholders in the text are not new finds


def test_a_flagging_guard_records_a_streamed_answer_once_and_lets_it_through() -> None:
    import asyncio

    from prometheus_client import CollectorRegistry

    from sluice.backends import Chunk
    from sluice.safety import GuardStage, SafetyMetrics

    flag = RegexGuard("watch", RegexGuardConfig(type="regex", patterns=["three"], action="flag"))
    stage = GuardStage([flag], {"watch": flag}, SafetyMetrics(CollectorRegistry()), window_chars=512,
                       hold_back_chars=0)
    ctx = _Ctx()
    texts = ["one ", "two ", "three ", "four ", "five ", "six"]

    async def source():  # type: ignore[no-untyped-def]
        for text in texts:
            yield Chunk({"choices": [{"index": 0, "delta": {"content": text}}]}, text=text, has_output=True)

    async def read() -> list[str]:
        return [chunk.text async for chunk in stage._stream(ctx, source(), stage.plan)]  # type: ignore[arg-type]

    assert asyncio.run(read()) == texts
    assert ctx.annotations == {"guard.output": [{"guard": "watch", "layer": "regex", "direction": "output",
                                                 "category": "policy", "action": "flag", "mode": "enforce",
                                                 "rule": "pattern[0]"}]}  # once, though the window held it 4 times
