"""Templates: Jinja2 in a sandbox, checked when a version is created (syntax by line, undeclared variables by
name, private attributes), rendered with exactly the declared variables; the config's keys and ranges."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.prompts import (
    CONFIG_KEYS,
    Message,
    PromptError,
    PromptSpec,
    TemplateError,
    Variable,
    check_config,
    check_spec,
    compiled,
)


def text(template: str, *names: str, **defaults: Any) -> PromptSpec:
    variables = tuple(Variable(name) for name in names) + tuple(Variable(name, default=value)
                                                                for name, value in defaults.items())
    return PromptSpec(kind="text", template=template, variables=variables)


CHAT = PromptSpec(
    kind="chat",
    messages=(Message("system", "You are a {{ tone }} support agent for {{ product }}."),
              Message("user", "{% for line in history %}- {{ line }}\n{% endfor %}{{ question }}")),
    variables=(Variable("product"), Variable("question", description="what the customer asked"),
               Variable("tone", default="friendly"), Variable("history", default=[])),
    config={"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256})


def test_a_text_prompt_renders_its_variables_and_returns_its_config() -> None:
    spec = PromptSpec(kind="text", template="Summarise for {{ audience }}:\n{{ text }}\n",
                      variables=(Variable("audience"), Variable("text")), config={"temperature": 0})
    rendered = compiled(spec).render({"audience": "a lawyer", "text": "Terms & conditions <b>apply</b>."})
    assert rendered.text == "Summarise for a lawyer:\nTerms & conditions <b>apply</b>.\n"  # no HTML escaping
    assert rendered.to_json() == {"kind": "text", "text": rendered.text, "config": {"temperature": 0}}


def test_a_chat_prompt_renders_each_message_with_defaults_and_lists() -> None:
    rendered = compiled(CHAT).render({"product": "Sluice", "question": "Why 429?", "history": ["hi", "hello"]})
    assert rendered.kind == "chat" and rendered.text is None
    assert rendered.messages == (Message("system", "You are a friendly support agent for Sluice."),
                                 Message("user", "- hi\n- hello\nWhy 429?"))
    assert rendered.to_json()["messages"][0] == {"role": "system",
                                                 "content": "You are a friendly support agent for Sluice."}
    assert rendered.config == CHAT.config


def test_missing_and_unknown_variables_are_errors_naming_them() -> None:
    prompt = compiled(CHAT)
    with pytest.raises(TemplateError, match=r"missing variables 'product', 'question'") as missing:
        prompt.render({"tone": "calm"})
    assert missing.value.variables == ("product", "question") and missing.value.code == "missing_variables"
    with pytest.raises(TemplateError, match=r"unknown variable 'qestion': this version declares history, product, "
                                            r"question, tone") as unknown:
        prompt.render({"product": "Sluice", "question": "?", "qestion": "?"})
    assert unknown.value.variables == ("qestion",) and unknown.value.param == "variables.qestion"


def test_variables_a_template_uses_but_does_not_declare_are_named_at_creation() -> None:
    with pytest.raises(TemplateError, match=r"messages\[1\] uses undeclared variables 'answer', 'extra'") as error:
        check_spec(PromptSpec(kind="chat", messages=(Message("system", "Hi {{ name }}"),
                                                     Message("user", "{{ answer }} {{ extra.field }}")),
                              variables=(Variable("name"),)))
    assert error.value.variables == ("answer", "extra") and error.value.code == "undeclared_variables"


def test_names_a_template_sets_itself_and_jinja_globals_need_no_declaration() -> None:
    spec = text("{% set n = items | length %}{% for i in range(n) %}{{ loop.index }}{{ items[i] }}{% endfor %}",
                "items")
    assert compiled(spec).render({"items": ["a", "b"]}).text == "1a2b"


def test_declared_but_unused_variables_are_a_warning_not_an_error() -> None:
    prompt = check_spec(text("Hello {{ name }}", "name", legacy=""))
    assert prompt.warnings() == ["variable 'legacy' is declared but no template uses it"]
    assert prompt.render({"name": "Ana", "legacy": "old callers still send it"}).text == "Hello Ana"


@pytest.mark.parametrize(("template", "line", "message"), [
    ("Hello {{ name }", 1, "unexpected '}'"),
    ("line one\nline two\n{% if name %}unclosed", 3, "Unexpected end of template"),
    ("{% for %}", 1, "Expected"),
])
def test_syntax_errors_name_the_line(template: str, line: int, message: str) -> None:
    with pytest.raises(TemplateError, match=rf"^template line {line}: .*{message}") as error:
        check_spec(text(template, "name"))
    assert error.value.code == "template_syntax"


@pytest.mark.parametrize("template", [
    "{{ name.__class__.__mro__ }}", "{{ name['__class__'] }}", "{{ name|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}"])
def test_private_attributes_are_refused_at_creation(template: str) -> None:
    with pytest.raises(TemplateError, match="private attribute") as error:
        check_spec(text(template, "name"))
    assert error.value.code == "unsafe_template"


def test_the_sandbox_refuses_an_unsafe_attribute_named_at_render() -> None:
    prompt = compiled(text("{{ value|attr(attribute) }}", "value", "attribute"))
    with pytest.raises(TemplateError, match="the sandbox refused it") as error:
        prompt.render({"value": "text", "attribute": "__class__"})
    assert error.value.code == "unsafe_template"
    with pytest.raises(TemplateError, match="access to attribute 'append' of 'list' object is unsafe"):
        compiled(text("{{ seen.append(1) }}", seen=[])).render({})  # a default is never changed by a render
    with pytest.raises(TemplateError, match="has no attribute 'missing'"):
        compiled(text("{{ user.missing }}", "user")).render({"user": {"name": "Ana"}})
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        compiled(text("{{ 1 / count }}", "count")).render({"count": 0})


@pytest.mark.parametrize(("spec", "message"), [
    (PromptSpec(kind="text"), "a text prompt has a template"),
    (PromptSpec(kind="chat", template="x"), "a chat prompt has messages"),
    (PromptSpec(kind="chat", messages=(Message("robot", "x"),)), r"messages\[0\]\.role: one of system, developer"),
    (PromptSpec(kind="text", template="x", semver="1.2"), "bad semver '1.2'"),
    (PromptSpec(kind="text", template="{{ a }}", variables=(Variable("a"), Variable("a"))), "declared twice"),
    (PromptSpec(kind="text", template="x", variables=(Variable("1st"),)), "bad variable name '1st'"),
    (PromptSpec(kind="text", template="x", config={"temprature": 0.2}), "unknown key 'temprature'"),
])
def test_a_bad_version_is_refused_naming_what_is_wrong(spec: PromptSpec, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        check_spec(spec)


def test_versions_with_the_same_content_share_one_compiled_template() -> None:
    first = PromptSpec(kind="text", template="{{ a }}!", variables=(Variable("a"),), message="one", author="x")
    second = PromptSpec(kind="text", template="{{ a }}!", variables=(Variable("a"),), message="two", semver="2.0.0")
    assert first.content_hash() == second.content_hash()
    assert compiled(first) is compiled(second)
    assert compiled(first) is not compiled(text("{{ a }}?", "a"))


def test_config_keys_and_ranges_are_checked_naming_the_key() -> None:
    good = {"model": "gpt-4o-mini", "temperature": 0.7, "max_tokens": 512, "top_p": 0.9, "stop": ["\n\n"], "seed": 7,
            "presence_penalty": 0.1, "frequency_penalty": -0.1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}}
    assert check_config(good) == good
    assert set(good) == set(CONFIG_KEYS)
    for config, message in [
        ({"temperature": 2.5}, r"config\.temperature: Input should be less than or equal to 2"),
        ({"max_tokens": 0}, r"config\.max_tokens"),
        ({"tempreature": 1, "modle": "x"}, r"config: unknown keys 'tempreature', 'modle'; a config may set model"),
        ({"response_format": {"type": "json_schema"}}, r"config\.response_format: .*needs json_schema"),
        ({"response_format": {"type": "yaml"}}, r"config\.response_format\.type"),
        ({"stop": ["a", "b", "c", "d", "e"]}, r"config\.stop"),
        ({"seed": None}, r"config\.seed: null; leave the key out instead"),
    ]:
        with pytest.raises(PromptError, match=message):
            check_config(config)
