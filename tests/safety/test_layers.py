"""The library-backed layers (toxicity classifier, presidio PII), per-team and per-key guard sets, and streamed
answers checked by a paced (every N characters) guard."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import Chunk
from sluice.config import GuardPolicy, parse_config
from sluice.errors import ConfigError, Forbidden, InvalidRequest
from sluice.safety import GuardStage, SafetyMetrics, build_guard
from sluice.safety.payloads import answer_rewrite
from tests.safety.test_guards import _Ctx


def guard(name: str, **config: Any) -> Any:
    return build_guard(name, parse_config({"safety": {"guards": {name: config}}}).safety.guards[name])


def test_toxicity_scores_abuse_and_leaves_hard_negatives_alone() -> None:
    toxic = guard("tox", type="toxicity")
    found = toxic.check("shut up you worthless stupid idiot", "input")
    assert found is not None and found.layer == "toxicity" and found.category == "toxicity"
    assert found.score is not None and found.score >= 0.6 and found.rule.startswith("p=")
    for text in ("how do I kill a zombie process", "the photographer will shoot the wedding", ""):
        assert toxic.check(text, "input") is None


def test_presidio_finds_what_the_builtin_detectors_do_not_and_masks_it() -> None:
    pii = guard("pii", type="pii", presidio=True)
    text = "my ssn is 219-09-9999, wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT, mail a@b.co"
    found = pii.check(text, "input")
    assert found is not None and found.rule == "email,crypto,us_ssn"
    assert pii.mask(text) == "my ssn is [US_SSN], wallet [CRYPTO], mail [EMAIL]"
    assert pii.check("Please write a short poem about autumn leaves in the park.", "input") is None
    plain = guard("plain", type="pii")
    assert plain.check("my ssn is 219-09-9999", "input") is None  # the built-in detectors alone miss it
    with pytest.raises(ConfigError, match=r"safety\.guards\.bad: unknown presidio entities PERSON"):
        guard("bad", type="pii", presidio=True, entities=["PERSON"])  # needs an NER model: not offline


def stage(guards: list[Any], **policies: dict[str, GuardPolicy]) -> GuardStage:
    defined = {g.name: g for g in guards}
    return GuardStage(guards[:1], defined, SafetyMetrics(CollectorRegistry()), window_chars=512, hold_back_chars=0,
                      **policies)


def ctx_for(team: str | None = None, key: tuple[str, str] | None = None, header: str | None = None) -> Any:
    ctx: Any = _Ctx()
    ctx.team = team
    ctx.key = SimpleNamespace(id=key[0], name=key[1]) if key else None
    ctx.headers = {"x-sluice-guards": header} if header is not None else {}
    return ctx


def test_teams_and_keys_add_guards_and_may_be_allowed_to_skip_some() -> None:
    a, b, c = (guard(name, type="keyword", words=[name]) for name in ("a", "b", "c"))
    s = stage([a, b, c], teams={"research": GuardPolicy(guards=["b"], may_skip=["a"])},
              keys={"vip": GuardPolicy(guards=["c"])})
    assert s._plan_for(ctx_for()).header == "a"
    assert s._plan_for(ctx_for(team="research")).header == "a,b"
    assert s._plan_for(ctx_for(team="research", key=("k1", "vip"))).header == "a,b,c"  # a key by name or id
    assert s._plan_for(ctx_for(team="research", header="-a")).header == "b"
    assert s._plan_for(ctx_for(team="research", header="c, -a")).header == "b,c"
    with pytest.raises(Forbidden, match="may not skip the guard `a`") as refused:
        s._plan_for(ctx_for(key=("vip", "other"), header="-a"))
    assert refused.value.code == "guard_not_skippable" and refused.value.status_code == 403
    with pytest.raises(InvalidRequest, match="Unknown guard `zz`"):
        s._plan_for(ctx_for(header="-zz"))


def test_policies_must_name_defined_guards() -> None:
    with pytest.raises(ConfigError, match=r"safety\.teams\.ops\.may_skip\.0: unknown guard 'x' \(defined: g\)"):
        parse_config({"safety": {"guards": {"g": {"type": "keyword", "words": ["w"]}},
                                 "teams": {"ops": {"may_skip": ["x"]}}}})


def test_a_paced_guard_holds_the_stream_until_it_has_read_the_text() -> None:
    toxic = guard("tox", type="toxicity", direction="output", every_chars=32)
    s = GuardStage([toxic], {"tox": toxic}, SafetyMetrics(CollectorRegistry()), window_chars=512, hold_back_chars=0)
    ctx: Any = _Ctx()
    texts = ["Thanks for asking. ", "Here is my answer: ", "you are a ", "worthless stupid ", "idiot ", "and more"]

    async def source():  # type: ignore[no-untyped-def]
        for text in texts:
            yield Chunk({"choices": [{"index": 0, "delta": {"content": text}}]}, text=text, has_output=True)

    async def read() -> list[str | None]:
        return [chunk.text or chunk.finish_reason async for chunk in s._stream(ctx, source(), s.plan)]

    out = asyncio.run(read())
    assert out[-1] == "content_filter"
    released = "".join(text for text in out[:-1] if text)
    assert "idiot" not in released and "worthless" not in released  # unread text was held, then withheld
    assert released.startswith("Thanks for asking.")  # what the guard had read (and passed) went out
    assert ctx.annotations["guard.output"][0]["guard"] == "tox"


def test_a_streamed_answer_is_masked_and_a_card_split_across_chunks_never_leaks_half() -> None:
    pii = guard("pii", type="pii", direction="output")
    # a hold-back shorter than the card: when its first three groups are due, the check sees that they mask
    # differently alone than with what follows, and holds them
    s = GuardStage([pii], {"pii": pii}, SafetyMetrics(CollectorRegistry()), window_chars=512, hold_back_chars=24)
    ctx: Any = _Ctx()
    texts = ["pay with ", "4111", " 1111", " 1111", " 1111", " today, or mail ", "jane@", "example.com", " ok"]

    async def source():  # type: ignore[no-untyped-def]
        for text in texts:
            yield Chunk({"choices": [{"index": 0, "delta": {"content": text}}]}, text=text, has_output=True)
        yield Chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, finish_reason="stop")

    async def read() -> list[Chunk]:
        return [chunk async for chunk in s._stream(ctx, source(), s.plan, answer_rewrite(s.plan.mask_out, None))]

    out = asyncio.run(read())
    assert "".join(chunk.text for chunk in out) == "pay with [CARD] today, or mail [EMAIL] ok"
    assert not any("4111" in chunk.text or "jane" in chunk.text for chunk in out)
    assert all(chunk.payload["choices"][0]["delta"].get("content", "") == chunk.text for chunk in out)
    assert out[-1].finish_reason == "stop"
    assert [v["rule"] for v in ctx.annotations["guard.output"]] == ["card"]  # recorded once, when first found


def test_the_direct_toxicity_scores_equal_the_packages_own_on_every_shipped_text() -> None:
    import warnings

    from sluice.safety import load_examples
    from sluice.safety.toxicity import _classifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from profanity_check import predict_prob
    texts = [example.text for example in load_examples(["jailbreak", "benign", "harmful", "toxic"])]
    direct = _classifier()
    assert direct is not predict_prob  # the shipped model has the expected form, so the direct path is taken
    assert max(abs(float(direct([text])[0]) - float(reference))
               for text, reference in zip(texts, predict_prob(texts), strict=True)) < 1e-12


def test_a_placeholder_split_across_chunks_is_put_back_whole() -> None:
    pii = guard("pii", type="pii", direction="input", unmask=True)
    vault: dict[str, str] = {}
    assert pii.mask_numbered("mail jane@x.io or bob@y.io", vault) == "mail [EMAIL_1] or [EMAIL_2]"
    s = GuardStage([pii], {"pii": pii}, SafetyMetrics(CollectorRegistry()), window_chars=512, hold_back_chars=2)
    ctx: Any = _Ctx()
    texts = ["Writing to [EMA", "IL_2", "] and [EMAIL_", "1], not [EMAIL_7", "]."]

    async def source():  # type: ignore[no-untyped-def]
        for text in texts:
            yield Chunk({"choices": [{"index": 0, "delta": {"content": text}}]}, text=text, has_output=True)

    async def read() -> list[Chunk]:
        return [chunk async for chunk in s._stream(ctx, source(), s.plan, answer_rewrite([], vault))]

    out = asyncio.run(read())
    assert "".join(chunk.text for chunk in out) == "Writing to bob@y.io and jane@x.io, not [EMAIL_7]."
    assert not any("[EMA" in chunk.text and "[EMAIL_7]" not in chunk.text for chunk in out)  # never half a one
