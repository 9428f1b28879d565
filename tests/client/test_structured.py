"""The typed client helper through the official openai SDK, a real gateway and a scripted upstream: a pydantic
model in, an instance out; the gateway's re-asks and the client's own (custom validators) counted and billed."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel, ConfigDict, RootModel, field_validator

from sluice.client import Structured, StructuredOutputError, Usage, astructured, response_format_for, structured
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app

JOHN = [{"role": "user", "content": "John Doe is 30 years old."}]
VALID = '{"name": "John Doe", "age": 30}'


class UserInfo(BaseModel):
    name: str
    age: int


class TitledUser(BaseModel):
    name: str
    age: int

    @field_validator("name")
    @classmethod
    def name_is_title_case(cls, name: str) -> str:
        if name != name.title():
            raise ValueError("name must be title case, as in 'John Doe'")
        return name


class Contact(BaseModel):
    name: str
    nickname: str | None = None


def usage_of(*texts: str, prompt_tokens: int = 10) -> Usage:
    """What the scripted upstream reports for these answers: a completion token per whitespace-separated piece."""
    completion = sum(len(re.findall(r"\s*\S+", text)) for text in texts)
    return Usage(prompt_tokens * len(texts), completion, prompt_tokens * len(texts) + completion)


@pytest.fixture
def upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    scripted = ScriptedUpstream([VALID])
    with serve_app(scripted.app()) as url:
        yield scripted, url


def gateway(url: str, db: Path, **overrides: Any) -> Any:
    return run_gateway(upstream_config(url, db, **overrides))


def client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)  # the SDK would retry a 502 itself


def test_the_instructor_example_gives_a_user_info(upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    with gateway(url, tmp_path / "log.db") as gw:
        answer = structured(client(gw), model="m", messages=JOHN, response_model=UserInfo)
    assert isinstance(answer, Structured)
    assert answer.value == UserInfo(name="John Doe", age=30)
    assert (answer.calls, answer.attempts, answer.modes) == (1, 1, ("validated",))
    assert answer.usage == usage_of(VALID)
    assert answer.completions[0].choices[0].message.content == VALID
    sent = scripted.requests[0]["response_format"]["json_schema"]
    assert sent["name"] == "UserInfo" and sent["strict"] is True
    assert sent["schema"]["additionalProperties"] is False and sent["schema"]["required"] == ["name", "age"]


def test_a_gateway_reask_shows_in_the_attempts_and_the_summed_usage(upstream: tuple[ScriptedUpstream, str],
                                                                    tmp_path: Path) -> None:
    scripted, url = upstream
    scripted.texts = ['{"name": "John Doe"}', VALID]
    with gateway(url, tmp_path / "log.db") as gw:
        answer = structured(client(gw), model="m", messages=JOHN, response_model=UserInfo)
    assert answer.value == UserInfo(name="John Doe", age=30)
    assert (answer.calls, answer.attempts, answer.modes) == (1, 2, ("reasked",))
    assert answer.usage == usage_of('{"name": "John Doe"}', VALID)
    assert len(scripted.requests) == 2


def test_a_custom_validator_failure_is_reasked_by_the_client_with_its_message(
        upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    lower = '{"name": "john doe", "age": 30}'
    scripted.texts = [lower, VALID]
    pricing = {"models": {"up-model": {"input_usd_per_1m": 1.0, "output_usd_per_1m": 3.0}}}
    with gateway(url, tmp_path / "log.db", pricing=pricing) as gw:
        answer = structured(client(gw), model="m", messages=JOHN, response_model=TitledUser, temperature=0)
    assert answer.value == TitledUser(name="John Doe", age=30)
    assert (answer.calls, answer.attempts, answer.modes) == (2, 2, ("validated", "validated"))
    tokens = usage_of(lower, VALID)
    assert answer.usage.total_tokens == tokens.total_tokens
    assert answer.usage.cost_usd == pytest.approx((tokens.prompt_tokens * 1.0 + tokens.completion_tokens * 3.0) / 1e6)
    reask = scripted.requests[1]
    assert reask["temperature"] == 0  # create_kwargs go with every call
    assert reask["messages"][:-2] == JOHN and reask["messages"][-2] == {"role": "assistant", "content": lower}
    assert reask["messages"][-1]["role"] == "user"
    assert "- name: Value error, name must be title case, as in 'John Doe'" in reask["messages"][-1]["content"]


async def test_the_async_variant_works_the_same(upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    scripted.texts = ['{"name": "john doe", "age": 30}', VALID]
    with gateway(url, tmp_path / "log.db") as gw:
        async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as async_client:
            answer = await astructured(async_client, model="m", messages=JOHN, response_model=TitledUser)
    assert answer.value == TitledUser(name="John Doe", age=30)
    assert (answer.calls, answer.attempts) == (2, 2)


def test_a_502_past_the_gateways_attempts_is_a_structured_output_error_with_the_usage_so_far(
        upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    lower = '{"name": "john doe", "age": 30}'
    scripted.texts = [lower, "I cannot answer that."]  # the client re-asks; the gateway then gives up
    with gateway(url, tmp_path / "log.db", structured={"max_attempts": 2}) as gw, \
            pytest.raises(StructuredOutputError) as raised:
        structured(client(gw), model="m", messages=JOHN, response_model=TitledUser)
    error = raised.value
    assert (error.calls, error.attempts) == (2, 3)  # 1 answer to the first call, 2 to the second
    assert error.usage == usage_of(lower)  # the 502 carries no usage: the answered call's
    assert len(error.completions) == 1 and len(scripted.requests) == 3
    assert error.errors[0].startswith("The model's answer did not match response_format after 2 attempts")
    assert str(error).startswith("the gateway found no valid answer after 2 call(s), 3 attempt(s): The model's")
    assert isinstance(error.__cause__, openai.APIStatusError) and error.__cause__.status_code == 502


def test_when_the_client_reasks_run_out_the_error_carries_the_validators_message(
        upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    scripted.texts = ['{"name": "john doe", "age": 30}']
    with gateway(url, tmp_path / "log.db") as gw, pytest.raises(StructuredOutputError) as raised:
        structured(client(gw), model="m", messages=JOHN, response_model=TitledUser, max_retries=2)
    error = raised.value
    assert (error.calls, error.attempts) == (3, 3) and len(scripted.requests) == 3
    assert error.errors == ("name: Value error, name must be title case, as in 'John Doe'",)
    assert error.usage == usage_of(*['{"name": "john doe", "age": 30}'] * 3)


def test_an_optional_field_becomes_a_required_nullable_one_in_strict_mode(
        upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    scripted, url = upstream
    scripted.texts = ['{"name": "Ann", "nickname": null}']
    with gateway(url, tmp_path / "log.db") as gw:
        answer = structured(client(gw), model="m", messages=[{"role": "user", "content": "Ann."}],
                            response_model=Contact)
    assert answer.value == Contact(name="Ann")
    sent = scripted.requests[0]["response_format"]["json_schema"]
    assert sent["strict"] is True and sent["schema"]["required"] == ["name", "nickname"]
    assert "default" not in sent["schema"]["properties"]["nickname"]


def test_a_field_with_a_default_keeps_the_schema_loose_and_may_be_left_out(
        upstream: tuple[ScriptedUpstream, str], tmp_path: Path) -> None:
    class Counted(BaseModel):
        name: str
        count: int = 1

    scripted, url = upstream
    scripted.texts = ['{"name": "Ann"}']
    with gateway(url, tmp_path / "log.db") as gw:
        answer = structured(client(gw), model="m", messages=JOHN, response_model=Counted)
    assert answer.value == Counted(name="Ann", count=1)
    assert scripted.requests[0]["response_format"]["json_schema"]["strict"] is False


# --- the response_format, without a server -----------------------------------------------------------------

def test_nested_models_are_closed_and_open_dicts_keep_the_schema_loose() -> None:
    class Address(BaseModel):
        street: str

    class Person(BaseModel):
        name: str
        address: Address | None = None

    class Tagged(BaseModel):
        tags: dict[str, int]

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str

    spec = response_format_for(Person)["json_schema"]
    assert spec["strict"] is True
    assert spec["schema"]["$defs"]["Address"]["additionalProperties"] is False
    assert spec["schema"]["required"] == ["name", "address"]
    assert response_format_for(Tagged)["json_schema"]["strict"] is False
    assert response_format_for(Loose)["json_schema"]["strict"] is False
    assert response_format_for(Loose)["json_schema"]["schema"] == Loose.model_json_schema()  # sent as pydantic made it


def test_strict_true_makes_every_property_required_and_strict_false_sends_the_schema_as_is() -> None:
    class Counted(BaseModel):
        name: str
        count: int = 1

    forced = response_format_for(Counted, strict=True)["json_schema"]
    assert forced["strict"] is True and forced["schema"]["required"] == ["name", "count"]
    loose = response_format_for(UserInfo, strict=False)["json_schema"]
    assert loose == {"name": "UserInfo", "schema": UserInfo.model_json_schema(), "strict": False}


def test_a_root_that_is_not_an_object_is_never_strict() -> None:
    assert response_format_for(RootModel[list[UserInfo]])["json_schema"]["strict"] is False


def test_a_stream_or_a_response_format_of_ones_own_is_refused() -> None:
    with pytest.raises(ValueError, match="stream"):
        structured(None, model="m", messages=JOHN, response_model=UserInfo, stream=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_retries"):
        structured(None, model="m", messages=JOHN, response_model=UserInfo, max_retries=-1)  # type: ignore[arg-type]


def test_the_client_helper_loads_neither_openai_nor_the_gateway() -> None:
    code = ("import sys, sluice.client\n"
            "print(sorted(name for name in sys.modules if name.partition('.')[0] in ('openai', 'starlette', 'httpx')"
            " or (name.startswith('sluice.') and not name.startswith('sluice.client'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
