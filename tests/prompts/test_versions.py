"""A prompt's references (`name@3`, `@production`, `@1.2.0`), names, labels and semvers, its content hash and
document, and the diff of two versions: plain data, no store."""

from __future__ import annotations

import pytest

from sluice.prompts import (
    Message,
    PromptBundle,
    PromptError,
    PromptRef,
    PromptSpec,
    PromptVersion,
    Variable,
    check_label,
    diff,
    parse_document,
    parse_ref,
)


@pytest.mark.parametrize(("ref", "expected"), [
    ("support", PromptRef("support")),
    ("support@latest", PromptRef("support")),
    ("support@3", PromptRef("support", version=3)),
    ("support@production", PromptRef("support", label="production")),
    ("support@tenant-a_2", PromptRef("support", label="tenant-a_2")),
    ("support@1.2.0", PromptRef("support", semver="1.2.0")),
    ("support.v2@2.0.0-rc.1", PromptRef("support.v2", semver="2.0.0-rc.1")),
])
def test_parse_ref_reads_latest_version_label_and_semver(ref: str, expected: PromptRef) -> None:
    assert parse_ref(ref) == expected
    assert str(parse_ref(ref)) == ref.removesuffix("@latest")


@pytest.mark.parametrize(("ref", "message"), [
    ("", "bad prompt name"), ("@3", "bad prompt reference"), ("a@", "bad prompt reference"),
    ("a@b@c", "bad prompt reference"), ("a@0", "versions start at 1"), ("a@1.2", "bad semver"),
    ("a@01.2.3", "bad semver"), ("a@Production", "bad label"), ("has space@1", "bad prompt name"),
])
def test_parse_ref_refuses_bad_references_saying_what_to_type(ref: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        parse_ref(ref)


@pytest.mark.parametrize("label", ["latest", "Production", "3", "-x", "has space", "x" * 65])
def test_labels_follow_the_registry_alias_rules_and_latest_is_automatic(label: str) -> None:
    with pytest.raises(PromptError, match="latest" if label == "latest" else "bad label"):
        check_label(label)


def version(number: int, spec: PromptSpec) -> PromptVersion:
    return PromptVersion("support", number, spec, spec.content_hash(), 0.0)


def test_diff_shows_the_template_as_a_unified_diff_and_the_rest_key_by_key() -> None:
    a = PromptSpec(kind="text", template="Hello {{ name }}.\nBe brief.\n",
                   variables=(Variable("name"), Variable("tone", default="calm")),
                   config={"model": "m", "temperature": 0.2})
    b = PromptSpec(kind="text", template="Hello {{ name }}!\nBe brief.\n",
                   variables=(Variable("name"), Variable("tone", default="warm"), Variable("lang", default="en")),
                   config={"model": "m", "temperature": 0.7, "max_tokens": 100}, semver="1.1.0")
    found = diff(version(1, a), version(2, b))
    assert list(found.template) == ["--- support@1\n", "+++ support@2\n", "@@ -1,2 +1,2 @@\n", "-Hello {{ name }}.\n",
                                    "+Hello {{ name }}!\n", " Be brief.\n"]
    assert found.changes == (
        ("semver", None, "1.1.0"),
        ("variables.tone.default", "calm", "warm"),
        ("variables.lang", None, {"required": False, "description": None, "default": "en"}),
        ("config.temperature", 0.2, 0.7),
        ("config.max_tokens", None, 100),
    )
    assert diff(version(1, a), version(1, a)).to_json() == {"a": 1, "b": 1, "template_diff": [], "changes": []}


def test_diff_of_chat_prompts_shows_each_message_under_its_role() -> None:
    a = PromptSpec(kind="chat", messages=(Message("system", "Be terse."), Message("user", "{{ q }}")),
                   variables=(Variable("q"),))
    b = PromptSpec(kind="chat", messages=(Message("system", "Be kind."), Message("user", "{{ q }}")),
                   variables=(Variable("q"),))
    lines = diff(version(1, a), version(2, b)).template
    assert "-Be terse.\n" in lines and "+Be kind.\n" in lines and " ### user\n" in lines


def test_the_content_hash_covers_what_is_rendered_not_the_commit_fields() -> None:
    spec = PromptSpec(kind="text", template="x", config={"temperature": 0.1, "model": "m"})
    same = PromptSpec(kind="text", template="x", config={"model": "m", "temperature": 0.1}, message="m", author="a",
                      semver="1.0.0")
    assert spec.content_hash() == same.content_hash()
    assert spec.content_hash() != PromptSpec(kind="text", template="x ").content_hash()
    assert spec.content_hash() != PromptSpec(kind="text", template="x", variables=(Variable("a"),),
                                             config=spec.config).content_hash()


def test_a_document_round_trips_and_names_the_field_at_fault() -> None:
    document = {"semver": "1.0.0", "kind": "chat", "message": "first", "author": "ana",
                "variables": [{"name": "q", "description": "the question"}, {"name": "tone", "default": "calm"}],
                "config": {"temperature": 0.2}, "messages": [{"role": "system", "content": "Be {{ tone }}."},
                                                            {"role": "user", "content": "{{ q }}"}]}
    spec = parse_document(document, "support/v1.yaml")
    assert spec.document() == document
    assert parse_document({"template": "hi", "variables": ["name"]}, "x").variables == (Variable("name"),)
    assert parse_document({"template": "hi", "config": {"seed": None, "top_p": 1}}, "x").config == {"top_p": 1}
    with pytest.raises(PromptError, match=r"^support/v2\.yaml: messages\.0\.content: required"):
        parse_document({"messages": [{"role": "user"}]}, "support/v2.yaml")
    with pytest.raises(PromptError, match=r"^support/v3\.yaml: tempalte: Extra inputs are not permitted"):
        parse_document({"tempalte": "hi"}, "support/v3.yaml")


def test_a_bundle_refuses_latest_and_bad_label_targets() -> None:
    with pytest.raises(PromptError, match="'latest' is not a label you can set"):
        PromptBundle.from_json({"name": "support", "versions": [], "labels": {"latest": 1}})
    with pytest.raises(PromptError, match=r"labels\.production: Input should be a valid integer"):
        PromptBundle.from_json({"name": "support", "versions": [], "labels": {"production": "two"}})
