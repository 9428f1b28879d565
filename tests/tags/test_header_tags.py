"""`tags.headers`: request headers copied into the request log as `tag.<name>` annotations (the worked example
of adding a stage, docs/architecture.md#adding-a-stage)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluice.config import parse_config
from sluice.errors import ConfigError
from tests.support.gateway import records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

USER = [{"role": "user", "content": "hello"}]


def test_tagged_headers_land_in_the_request_log_cut_to_max_chars(upstream: tuple[OpenAIUpstream, str],
                                                                  tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    config = upstream_config(upstream[1], db, tags={"headers": {"X-App-Name": "app", "x-env": "env"},
                                                    "max_chars": 8})
    with run_gateway(config) as gw:
        chain = httpx.get(gw.url + "/admin/status").json()["chains"]["m"]["generate"]
        assert chain[:3] == ["prompt", "route", "tags"]
        body = {"model": "m", "messages": USER}
        sent = {"x-app-name": "checkout-service", "x-env": "prod", "x-request-id": "tagged"}
        assert httpx.post(gw.url + "/v1/chat/completions", json=body, headers=sent).status_code == 200
        stream = {**body, "stream": True}
        response = httpx.post(gw.url + "/v1/chat/completions", json=stream,
                              headers={"x-env": "", "x-request-id": "untagged"})
        assert response.status_code == 200
        embed = {"model": "m", "input": "hi"}
        httpx.post(gw.url + "/v1/embeddings", json=embed, headers={"x-env": "dev", "x-request-id": "embed"})
    by_id = {record.client_request_id: record for record in records(db)}
    assert by_id["tagged"].annotations == {"tag.app": "checkout", "tag.env": "prod"}  # cut to 8 characters
    assert by_id["untagged"].annotations == {}  # absent or empty headers add nothing
    assert by_id["embed"].annotations == {"tag.env": "dev"}  # every endpoint's chain has the stage


def test_without_tags_the_stage_is_not_in_any_chain(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(upstream_config(upstream[1], tmp_path / "log.db")) as gw:
        chains = httpx.get(gw.url + "/admin/status").json()["chains"]
    assert all("tags" not in stages for kinds in chains.values() for stages in kinds.values())


@pytest.mark.parametrize(("headers", "message"), [
    ({"x app": "app"}, "'x app' is not an HTTP header name"),
    ({"Authorization": "who"}, "carries credentials"),
    ({"x-app": "App"}, "tag name 'App'"),
    ({"x-app": "app", "X-App": "app2"}, "listed twice"),
])
def test_bad_tag_config_names_the_key(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r"tags\.headers") as error:
        parse_config({"tags": {"headers": headers}})
    assert message in str(error.value)
