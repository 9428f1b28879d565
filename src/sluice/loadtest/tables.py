"""The rows of bench tables (run summary, sweep steps, errors), shared by the terminal and the HTML report."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sluice.loadtest.failures import capacity_reason, classify
from sluice.loadtest.metrics import percentile_key

LATENCY_TITLES = (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                  ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency"))
_COUNT_ROWS = (("Successful requests", "completed"), ("Failed requests", "failed"),
               ("Benchmark duration (s)", "duration"), ("Requested rate (req/s)", "request_rate"),
               ("Offered rate (req/s)", "offered_request_rate"), ("Total input tokens", "total_input_tokens"),
               ("Total generated tokens", "total_output_tokens"), ("Request throughput (req/s)", "request_throughput"),
               ("Request goodput (req/s)", "request_goodput"),
               ("Output token throughput (tok/s)", "output_throughput"),
               ("Total token throughput (tok/s)", "total_token_throughput"),
               ("Achieved concurrency", "achieved_concurrency"), ("Warm-up requests (not measured)", "warmup_requests"))
CONFIG_KEYS = ("backend", "base_url", "endpoint", "url", "model_id", "dataset_name", "dataset_path",
               "random_input_len", "random_output_len", "random_range_ratio", "random_prefix_len", "prefix_count",
               "turns", "num_prompts", "request_rate", "arrival", "burstiness", "ramp_up_s", "max_concurrency",
               "duration_limit_s", "seed", "ignore_eos", "extra_body", "goodput", "warmup_requests")
NOT_AVAILABLE = "n/a"  # a latency of a run where no request succeeded: there is none, and 0.00 would be a lie


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, Mapping):
        return " ".join(f"{k}:{v:g}" if isinstance(v, float) else f"{k}:{v}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)


def result_percentiles(result: Mapping[str, Any], metric: str = "ttft") -> list[float]:
    """The percentiles a result reports, read from its keys (`p90_ttft_ms`, `p99.9_ttft_ms`, ...)."""
    pattern = re.compile(rf"^p(\d+(?:\.\d+)?)_{metric}_ms$")
    return sorted(float(m[1]) for key in result if (m := pattern.match(key)))


def summary_sections(result: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section title, [(label, value)]) in the order of vLLM's printed summary; P50 is the median row (not
    repeated), and latencies are n/a when no request succeeded."""
    counts = [(label, fmt(result[key])) for label, key in _COUNT_ROWS if result.get(key) is not None]
    sections = [("", counts)]
    measured = bool(result.get("completed"))
    for name, title in LATENCY_TITLES:

        def value(key: str) -> str:
            return fmt(result.get(key)) if measured else NOT_AVAILABLE

        rows = [(f"Mean {name.upper()} (ms)", value(f"mean_{name}_ms")),
                (f"Median {name.upper()} (ms)", value(f"median_{name}_ms"))]
        rows += [(f"P{percentile_key(p)} {name.upper()} (ms)", value(f"p{percentile_key(p)}_{name}_ms"))
                 for p in result_percentiles(result, name) if p != 50]
        sections.append((title, rows))
    return sections


def error_rows(result: Mapping[str, Any]) -> list[tuple[str, str, int, str]]:
    """(error class, kind, count, the server's message or the capacity reason) for each failed class."""
    examples: Mapping[str, str] = result.get("error_examples") or {}
    rows = []
    for error, count in sorted((result.get("errors_by_class") or {}).items(), key=lambda item: -item[1]):
        detail = examples.get(error)
        reason = capacity_reason(detail)
        message = f"{reason} — {detail}" if reason and detail else detail or ""
        rows.append((error, classify(error, detail).value, int(count), message))
    return rows


def config_rows(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, fmt(document[key])) for key in CONFIG_KEYS if key in document]


def sweep_headers(document: Mapping[str, Any]) -> list[str]:
    key = percentile_key(float(document["sweep"].get("slo_percentile", 99)))
    return [document["sweep"]["dimension"], "ok", "failed", "err %", "req/s", "out tok/s", "P50 TTFT", f"P{key} TTFT",
            "P50 TPOT", f"P{key} TPOT", "verdict"]


def sweep_rows(document: Mapping[str, Any]) -> list[tuple[list[str], bool, str]]:
    """([cells], passed, reasons) per step; latencies in ms, blank where nothing completed."""
    key = percentile_key(float(document["sweep"].get("slo_percentile", 99)))
    rows = []
    for step in document["steps"]:
        verdict = step.get("verdict") or {}
        done = bool(step["completed"])

        def latency(field: str, step: Mapping[str, Any] = step, done: bool = done) -> str:
            return f"{float(step[field]):.1f}" if done and field in step else "—"

        error_rate = step.get("error_rate", step["failed"] / max(1, step["num_prompts"]))
        cells = [f"{step['sweep_value']:g}", str(step["completed"]), str(step["failed"]), f"{100 * error_rate:.1f}",
                 fmt(step["request_throughput"]), fmt(step["output_throughput"]), latency("median_ttft_ms"),
                 latency(f"p{key}_ttft_ms"), latency("median_tpot_ms"), latency(f"p{key}_tpot_ms"),
                 "PASS" if verdict.get("passed") else f"FAIL ({verdict.get('kind')})"]
        rows.append((cells, bool(verdict.get("passed")), "; ".join(verdict.get("reasons") or [])))
    return rows


def sweep_headline(document: Mapping[str, Any]) -> list[str]:
    """"largest load holding the SLO: X" and "broke at Y because Z", as lines."""
    sweep = document["sweep"]
    dimension = sweep["dimension"]
    holding, broke = sweep.get("largest_passing"), sweep.get("broke_at")
    lines = [f"largest {dimension} holding the SLO: {holding:g}" if holding is not None
             else f"no {dimension} step held the SLO"]
    if broke is not None:
        lines.append(f"broke at {dimension} {broke:g} because {sweep.get('broke_kind')}: {sweep.get('broke_reason')}")
    elif document.get("steps"):
        lines.append(f"every step held the SLO (up to {dimension} {document['steps'][-1]['sweep_value']:g})")
    return lines
