"""`RequestContext` annotations: what a stage attaches lands in the record, and costs nothing when unused."""

from __future__ import annotations

import pytest

from sluice.gateway.context import RequestContext


def test_annotations_land_in_the_record_and_a_later_value_wins() -> None:
    ctx = RequestContext("req-1", "chat", None)
    ctx.annotate("router.choice", "easy")
    ctx.annotate("router.score", 0.25)
    ctx.annotate("router.choice", "hard")
    ctx.annotate("guard.verdicts", [{"layer": "regex", "action": "allow"}])
    record = ctx.finish(keep_bodies=False)
    assert record.annotations == {"router.choice": "hard", "router.score": 0.25,
                                  "guard.verdicts": [{"layer": "regex", "action": "allow"}]}


def test_a_request_nothing_annotates_allocates_no_annotations() -> None:
    ctx = RequestContext("req-2", "chat", None)
    assert ctx.annotations is None
    assert ctx.finish(keep_bodies=False).annotations == {}


def test_annotation_keys_are_namespaced_by_concern() -> None:
    ctx = RequestContext("req-3", "chat", None)
    with pytest.raises(ValueError, match=r"<concern>\.<name>"):
        ctx.annotate("choice", "easy")
