"""Virtual key records: the secret's format, its hash, rotation grace, status, allowed-model globs."""

from __future__ import annotations

import hashlib

from sluice.cost.keys import (
    TOKEN_PREFIX,
    ModelMatcher,
    VirtualKey,
    hash_token,
    new_key_id,
    new_token,
    parse_key_id,
)


def test_a_secret_carries_its_public_id_and_192_random_bits() -> None:
    key_id = new_key_id()
    token = new_token(key_id)
    assert token.startswith(f"{TOKEN_PREFIX}{key_id}-") and len(token) == 71
    assert parse_key_id(token) == key_id
    assert new_token(key_id) != token
    assert len({new_key_id() for _ in range(1000)}) == 1000


def test_malformed_secrets_are_rejected_before_any_lookup() -> None:
    token = new_token("0123456789ab")
    for bad in ("", "sk-master", token[:-1], token + "0", token.replace("sk-sluice-", "sk-sluicx-"),
                token[:-1] + "G", token.replace("0123456789ab", "0123456789aZ"),
                token[:22] + "_" + token[23:]):
        assert parse_key_id(bad) is None, bad


def test_the_stored_hash_is_plain_sha256_of_the_whole_secret() -> None:
    token = new_token("0123456789ab")
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


def test_the_previous_secret_is_accepted_only_during_the_grace_period() -> None:
    old, new = new_token("0123456789ab"), new_token("0123456789ab")
    key = VirtualKey(id="0123456789ab", name="k", secret_hash=hash_token(new), previous_hash=hash_token(old),
                     previous_valid_until=1000.0)
    assert key.accepts(hash_token(new), 5000.0)
    assert key.accepts(hash_token(old), 999.0)
    assert not key.accepts(hash_token(old), 1000.0)
    assert not key.accepts(hash_token(new_token("0123456789ab")), 10.0)


def test_status_revoked_wins_over_expired() -> None:
    assert VirtualKey(id="a", name="k").status(1e9) == "active"
    assert VirtualKey(id="a", name="k", expires_at=100.0).status(99.0) == "active"
    assert VirtualKey(id="a", name="k", expires_at=100.0).status(100.0) == "expired"
    assert VirtualKey(id="a", name="k", expires_at=100.0, revoked_at=50.0).status(200.0) == "revoked"


def test_allowed_models_are_exact_names_or_globs() -> None:
    matcher = ModelMatcher(("chat", "gpt-4o*", "llama-3.?-8b", "meta-llama/*"))
    assert matcher("chat") and matcher("gpt-4o") and matcher("gpt-4o-mini")
    assert matcher("llama-3.1-8b") and matcher("meta-llama/Llama-3.1-8B-Instruct")
    assert not matcher("chat-large") and not matcher("gpt-4") and not matcher("llama-3.10-8b")
    assert not matcher("Chat")  # case matters, as model names do
    assert VirtualKey(id="a", name="k").allows_model("anything")
    assert not VirtualKey(id="a", name="k", models=("chat",)).allows_model("other")


def test_the_public_view_never_shows_a_hash() -> None:
    key = VirtualKey(id="0123456789ab", name="k", models=("m",), metadata={"a": 1}, secret_hash="f" * 64,
                     previous_hash="e" * 64)
    public = key.public(0.0)
    assert "f" * 64 not in str(public) and "e" * 64 not in str(public)
    assert public["models"] == ["m"] and public["metadata"] == {"a": 1} and public["status"] == "active"
