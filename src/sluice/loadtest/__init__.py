"""Load testing of OpenAI-compatible servers (`sluice bench`), with vLLM `bench serve` metric definitions."""

from sluice.loadtest.metrics import BenchmarkSummary, RequestResult, summarize

__all__ = ["BenchmarkSummary", "RequestResult", "summarize"]
