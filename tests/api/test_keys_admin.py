"""Virtual keys end to end: the admin API, /v1 authentication, rotation, revocation, hashing at rest."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

MASTER = "sk-master-test"
ADMIN = {"authorization": f"Bearer {MASTER}"}
USER = [{"role": "user", "content": "hello there"}]


def keyed_config(upstream_url: str, db: Path, **overrides: Any) -> dict[str, Any]:
    return upstream_config(upstream_url, db, server={"master_key": MASTER}, **overrides)


def create_key(gw: RunningGateway, **settings: Any) -> tuple[dict[str, Any], str]:
    response = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "test", **settings})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"], body["secret"]


def chat(gw: RunningGateway, token: str | None, model: str = "m") -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gw.url + "/v1/chat/completions", headers=headers, json={"model": model, "messages": USER})


def test_create_list_show_update_through_the_admin_api(upstream: tuple[OpenAIUpstream, str],
                                                      tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        key, secret = create_key(gw, team="search", owner="ana", models=["m", "gpt-4o*"], rpm=60, tpm=10_000,
                                 budget_day_usd=5, budget_total_usd=100, metadata={"ticket": "OPS-1"},
                                 expires_in_s=3600)
        assert secret.startswith(f"sk-sluice-{key['id']}-") and len(secret) == 71
        assert key["display"] == f"sk-sluice-{key['id']}-…" and key["status"] == "active"
        assert (key["team"], key["owner"], key["models"], key["rpm"], key["tpm"]) == (
            "search", "ana", ["m", "gpt-4o*"], 60, 10_000)
        assert key["expires_at"] == pytest.approx(time.time() + 3600, abs=30)
        assert "secret_hash" not in key and secret not in str(key)

        create_key(gw, team="ads")
        listed = httpx.get(gw.url + "/admin/keys", headers=ADMIN, params={"team": "search"}).json()
        assert [k["id"] for k in listed["data"]] == [key["id"]]
        assert len(httpx.get(gw.url + "/admin/keys", headers=ADMIN).json()["data"]) == 2

        assert chat(gw, secret).status_code == 200
        shown = httpx.get(gw.url + f"/admin/keys/{key['id']}", headers=ADMIN).json()
        assert shown["spend"]["reserved_usd"] == 0 and set(shown["spend"]) >= {"day_usd", "month_usd", "total_usd"}

        updated = httpx.patch(gw.url + f"/admin/keys/{key['id']}", headers=ADMIN,
                              json={"rpm": None, "team": "search-2", "budget_day_usd": None}).json()
        assert (updated["rpm"], updated["team"], updated["budget_day_usd"], updated["tpm"]) == (
            None, "search-2", None, 10_000)
        assert updated["updated_at"] > key["updated_at"]


def test_admin_api_errors_are_openai_shaped(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        _, secret = create_key(gw)
        assert httpx.get(gw.url + "/admin/keys").status_code == 401
        # a virtual key is never admin
        assert httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {secret}"}).status_code == 401
        bad = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "x", "rpm": 0})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
        unknown = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "x", "colour": "red"})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "colour"
        both = httpx.post(gw.url + "/admin/keys", headers=ADMIN,
                          json={"name": "x", "expires_at": 2e9, "expires_in_s": 60})
        assert both.status_code == 400
        missing = httpx.get(gw.url + "/admin/keys/000000000000", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"
        assert httpx.post(gw.url + "/admin/keys/000000000000/revoke", headers=ADMIN).status_code == 404


def test_rotation_retires_the_old_secret_and_keeps_id_and_settings(upstream: tuple[OpenAIUpstream, str],
                                                                   tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        key, old = create_key(gw, team="t", rpm=100)
        assert chat(gw, old).status_code == 200
        rotated = httpx.post(gw.url + f"/admin/keys/{key['id']}/rotate", headers=ADMIN).json()
        new = rotated["secret"]
        assert new != old and rotated["key"]["id"] == key["id"] and rotated["key"]["rpm"] == 100
        refused = chat(gw, old)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert chat(gw, new).status_code == 200


def test_rotation_with_a_grace_period_accepts_both_secrets_until_it_ends(upstream: tuple[OpenAIUpstream, str],
                                                                        tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        key, old = create_key(gw)
        rotated = httpx.post(gw.url + f"/admin/keys/{key['id']}/rotate", headers=ADMIN, json={"grace_s": 600}).json()
        assert rotated["key"]["rotation_grace_until"] == pytest.approx(time.time() + 600, abs=30)
        assert chat(gw, old).status_code == 200
        assert chat(gw, rotated["secret"]).status_code == 200
        again = httpx.post(gw.url + f"/admin/keys/{key['id']}/rotate", headers=ADMIN).json()  # no grace
        assert chat(gw, rotated["secret"]).status_code == 401
        assert chat(gw, old).status_code == 401
        assert chat(gw, again["secret"]).status_code == 200


def test_revoked_and_expired_keys_get_401(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        key, secret = create_key(gw)
        assert chat(gw, secret).status_code == 200  # cached now: revocation must drop the cached copy
        revoked = httpx.post(gw.url + f"/admin/keys/{key['id']}/revoke", headers=ADMIN).json()
        assert revoked["status"] == "revoked"
        refused = chat(gw, secret)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        assert httpx.post(gw.url + f"/admin/keys/{key['id']}/rotate", headers=ADMIN).status_code == 400
        assert httpx.get(gw.url + "/admin/keys", headers=ADMIN).json()["data"] == []
        listed = httpx.get(gw.url + "/admin/keys", headers=ADMIN, params={"include_revoked": "true"}).json()
        assert [k["status"] for k in listed["data"]] == ["revoked"]

        past = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "x", "expires_at": time.time() - 1})
        assert past.status_code == 400 and past.json()["error"]["param"] == "expires_at"
        assert "in the past" in past.json()["error"]["message"]
        key, expired = create_key(gw, expires_in_s=3600)
        assert chat(gw, expired).status_code == 200
        # an update may move the expiry into the past: the key expires now (and can be extended again)
        assert httpx.patch(gw.url + f"/admin/keys/{key['id']}", headers=ADMIN,
                           json={"expires_at": time.time() - 1}).json()["status"] == "expired"
        refused = chat(gw, expired)
        assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]


def test_secrets_are_stored_only_as_hashes(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    with run_gateway(keyed_config(upstream[1], db)) as gw:
        key, secret = create_key(gw)
        rotated = httpx.post(gw.url + f"/admin/keys/{key['id']}/rotate", headers=ADMIN,
                             json={"grace_s": 60}).json()["secret"]
        assert chat(gw, rotated).status_code == 200
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        hashes = conn.execute("SELECT secret_hash, previous_hash FROM virtual_keys").fetchone()
    assert hashes == (hashlib.sha256(rotated.encode()).hexdigest(), hashlib.sha256(secret.encode()).hexdigest())
    on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("db.sqlite*"))
    for token in (secret, rotated):
        assert token.encode() not in on_disk
        assert token.split("-")[-1].encode() not in on_disk  # not even the random part


def test_virtual_keys_close_an_open_gateway(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(upstream_config(upstream[1], tmp_path / "db.sqlite")) as gw:  # no master key
        assert chat(gw, None).status_code == 200  # open, as before keys existed
        assert chat(gw, "anything").status_code == 200
        _, secret = create_key(gw)
        refused = chat(gw, None)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert chat(gw, "anything").status_code == 401
        assert chat(gw, secret).status_code == 200


def test_master_key_is_admin_and_unlimited_alongside_virtual_keys(upstream: tuple[OpenAIUpstream, str],
                                                                 tmp_path: Path) -> None:
    with run_gateway(keyed_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        create_key(gw, rpm=1, models=["nothing-*"])
        for _ in range(3):
            assert chat(gw, MASTER).status_code == 200


def test_a_key_sees_and_calls_only_its_models(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    config = keyed_config(upstream[1], tmp_path / "db.sqlite")
    config["models"] = {name: {"targets": [{"backend": "up", "model": "up-model"}]}
                        for name in ("chat-small", "chat-large", "embed")}
    with run_gateway(config) as gw:
        _, secret = create_key(gw, models=["chat-s*", "embed"])
        client = gw.client(api_key=secret)
        assert client.chat.completions.create(model="chat-small", messages=USER).choices  # type: ignore[arg-type]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model="chat-large", messages=USER)  # type: ignore[arg-type]
        assert denied.value.status_code == 403 and denied.value.code == "model_not_allowed"
        assert sorted(model.id for model in client.models.list()) == ["chat-small", "embed"]
        assert len(gw.client(api_key=MASTER).models.list().data) == 3
        assert client.embeddings.create(model="embed", input="hi").data
        with pytest.raises(openai.PermissionDeniedError):
            client.embeddings.create(model="chat-large", input="hi")


def test_key_and_team_reach_the_request_log(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    with run_gateway(keyed_config(upstream[1], db)) as gw:
        key, secret = create_key(gw, team="search")
        assert chat(gw, secret, model="nope").status_code == 404
        assert chat(gw, secret).status_code == 200
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key_id, team, status_code FROM request_log ORDER BY id").fetchall()
        last_used = conn.execute("SELECT last_used_at FROM virtual_keys").fetchone()[0]
    assert rows == [(key["id"], "search", 404), (key["id"], "search", 200)]
    assert last_used is not None and last_used >= key["created_at"]  # written in a batch at shutdown
