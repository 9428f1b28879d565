"""Cache keys: what makes two requests the same answer, and what a semantic lookup compares."""

from __future__ import annotations

from typing import Any

from sluice.backends import ChatCompletionRequest, CompletionRequest
from sluice.cache import exact_key, request_body, semantic_query

SYSTEM = {"role": "system", "content": "You are a helpful support agent."}


def chat_body(**fields: Any) -> dict[str, Any]:
    raw = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "How do I reset my password?"}],
           "temperature": 0, **fields}
    return request_body(ChatCompletionRequest.model_validate(raw), raw)


def key(body: dict[str, Any], namespace: str = "anonymous", endpoint: str = "chat") -> str:
    return exact_key(endpoint, namespace, body)


def test_delivery_fields_do_not_change_the_key() -> None:
    plain = key(chat_body())
    assert key(chat_body(stream=True, stream_options={"include_usage": True}, user="alice")) == plain
    assert key(chat_body(seed=None, top_p=None)) == plain  # null means unset


def test_every_output_param_changes_the_key() -> None:
    plain = key(chat_body())
    changed = [chat_body(temperature=0.5), chat_body(top_p=0.9), chat_body(max_tokens=10),
               chat_body(max_completion_tokens=10), chat_body(stop=["\n"]), chat_body(seed=1), chat_body(n=2),
               chat_body(logit_bias={"50256": -100}), chat_body(response_format={"type": "json_object"}),
               chat_body(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
               chat_body(tool_choice="none"), chat_body(presence_penalty=0.5), chat_body(top_k=5),
               chat_body(model="other")]
    keys = {key(body) for body in changed}
    assert plain not in keys and len(keys) == len(changed)


def test_integer_and_float_params_hash_alike_and_key_order_does_not_matter() -> None:
    assert key(chat_body(temperature=0)) == key(chat_body(temperature=0.0))
    first = chat_body(response_format={"type": "json_schema", "json_schema": {"name": "a", "strict": True}})
    second = chat_body(response_format={"json_schema": {"strict": True, "name": "a"}, "type": "json_schema"})
    assert key(first) == key(second)


def test_namespace_and_endpoint_are_part_of_the_key() -> None:
    body = chat_body()
    assert len({key(body, "key:a"), key(body, "key:b"), key(body, "team:t"), key(body, endpoint="completions")}) == 4


def test_messages_change_the_key_but_null_message_fields_do_not() -> None:
    with_name = chat_body(messages=[SYSTEM, {"role": "user", "content": "How do I reset my password?",
                                             "name": None}])
    assert key(with_name) == key(chat_body())
    other = chat_body(messages=[SYSTEM, {"role": "user", "content": "How do I reset my PIN?"}])
    assert key(other) != key(chat_body())


def query(body: dict[str, Any], namespace: str = "anonymous", turns: int = 1):  # type: ignore[no-untyped-def]
    return semantic_query("chat", namespace, body, max_user_turns=turns)


def test_semantic_query_embeds_the_last_user_text_and_scopes_the_rest() -> None:
    found = query(chat_body())
    assert found is not None and found.text == "How do I reset my password?"
    paraphrase = query(chat_body(messages=[SYSTEM, {"role": "user", "content": "I forgot my password, help"}]))
    assert paraphrase is not None and paraphrase.scope == found.scope


def test_semantic_scope_differs_by_system_prompt_params_model_and_namespace() -> None:
    base = query(chat_body())
    assert base is not None
    other_system = query(chat_body(messages=[{"role": "system", "content": "You are a pirate."},
                                             {"role": "user", "content": "How do I reset my password?"}]))
    scopes = {found.scope for found in (other_system, query(chat_body(temperature=0.7)), query(chat_body(model="x")),
                                        query(chat_body(), namespace="key:k")) if found is not None}
    assert len(scopes) == 4 and base.scope not in scopes


def test_long_conversations_and_non_text_prompts_are_not_semantic() -> None:
    conversation = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "How do I reset my password?"}]
    assert query(chat_body(messages=conversation)) is None
    assert query(chat_body(messages=conversation), turns=2) is not None
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    assert query(chat_body(messages=image)) is None
    assert query(chat_body(messages=[SYSTEM, {"role": "user", "content": "a"}, {"role": "assistant",
                                                                            "content": "b"}])) is None
    parts = [{"role": "user", "content": [{"type": "text", "text": "How do I"}, {"type": "text", "text": "reset"}]}]
    found = query(chat_body(messages=parts))
    assert found is not None and found.text == "How do I\nreset"


def test_earlier_turns_are_part_of_the_scope() -> None:
    def conversation(earlier: str) -> dict[str, Any]:
        return chat_body(messages=[{"role": "user", "content": earlier}, {"role": "assistant", "content": "ok"},
                                   {"role": "user", "content": "and then?"}])

    first, second = query(conversation("Install python"), turns=2), query(conversation("Install rust"), turns=2)
    assert first is not None and second is not None and first.scope != second.scope


def test_completions_prompt_is_the_semantic_text() -> None:
    raw = {"model": "m", "prompt": ["Translate: hello"], "temperature": 0}
    body = request_body(CompletionRequest.model_validate(raw), raw)
    found = semantic_query("completions", "anonymous", body, max_user_turns=1)
    assert found is not None and found.text == "Translate: hello"
    many = {"model": "m", "prompt": ["a", "b"]}
    assert semantic_query("completions", "anonymous", request_body(CompletionRequest.model_validate(many), many),
                          max_user_turns=1) is None
