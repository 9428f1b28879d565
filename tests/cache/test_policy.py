"""Cache policy: client directives, which requests qualify, namespaces, which answers may be stored."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sluice.cache import directive_from_headers, namespace_of, qualifies, storable
from sluice.errors import InvalidRequest


@pytest.mark.parametrize(("headers", "lookup", "store"), [
    ({}, True, True),
    ({"cache-control": "no-cache"}, False, True),
    ({"cache-control": "max-age=0, No-Store"}, True, False),
    ({"cache-control": "no-cache, no-store"}, False, False),
    ({"x-sluice-cache": "refresh"}, False, True),
    ({"x-sluice-cache": "BYPASS"}, False, False),
])
def test_directives(headers: dict[str, str], lookup: bool, store: bool) -> None:
    directive = directive_from_headers(headers)
    assert (directive.lookup, directive.store) == (lookup, store)


def test_unknown_cache_header_value_is_a_client_error() -> None:
    with pytest.raises(InvalidRequest) as caught:
        directive_from_headers({"x-sluice-cache": "sometimes"})
    assert caught.value.param == "x-sluice-cache" and caught.value.status_code == 400


def test_deterministic_means_temperature_zero_or_a_seed() -> None:
    assert qualifies("deterministic", 0.0, None)
    assert qualifies("deterministic", 0.9, 42)
    assert not qualifies("deterministic", None, None)  # the default temperature is 1
    assert not qualifies("deterministic", 0.2, None)
    assert qualifies("always", 1.5, None)


def test_namespaces() -> None:
    alice, bob = SimpleNamespace(id="k-alice"), SimpleNamespace(id="k-bob")
    assert namespace_of("key", alice, "red") == "key:k-alice"
    assert namespace_of("key", bob, "red") != namespace_of("key", alice, "red")
    assert namespace_of("team", alice, "red") == namespace_of("team", bob, "red") == "team:red"
    assert namespace_of("team", alice, None) == "key:k-alice"  # a key outside any team is its own tenant
    assert namespace_of("key", None, None) == "anonymous"
    assert namespace_of("global", alice, "red") == namespace_of("global", bob, "blue") == "global"


def answer(*reasons: str | None) -> dict[str, object]:
    return {"choices": [{"index": i, "finish_reason": reason} for i, reason in enumerate(reasons)]}


def test_only_complete_answers_are_storable() -> None:
    assert storable(answer("stop"), store_truncated=False)
    assert storable(answer("tool_calls", "stop"), store_truncated=False)
    assert not storable(answer("length"), store_truncated=False)
    assert storable(answer("length"), store_truncated=True)
    assert not storable(answer("stop", "content_filter"), store_truncated=True)
    assert not storable(answer(None), store_truncated=False)
    assert not storable({"choices": []}, store_truncated=False)
