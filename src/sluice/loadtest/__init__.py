"""Load testing of OpenAI-compatible servers (`sluice bench`), with vLLM `bench serve` metric definitions.

Everything but the metric definitions and the live statistics loads on first use: the client (aiohttp), the
datasets and targets (config, the tokenizer), the plots and the report (matplotlib), so that `sluice --help`,
which imports the bench command, loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.loadtest.live import LiveStats
from sluice.loadtest.metrics import (
    SCRAPES_FIELD,
    SLO_METRICS,
    BenchmarkSummary,
    RequestResult,
    summarize,
    without_detail,
)

if TYPE_CHECKING:
    from sluice.loadtest.client import run_async
    from sluice.loadtest.compare import CompareError, compare_results, load_result, parse_rule
    from sluice.loadtest.datasets import DatasetSpec, make_requests
    from sluice.loadtest.plots import run_figures, sweep_figures, write_figures
    from sluice.loadtest.records import (
        document_records,
        load_beside,
        records_path,
        scrapes_path,
        write_csv,
        write_jsonl,
    )
    from sluice.loadtest.report import is_sweep, render_report
    from sluice.loadtest.runner import LoadSettings, measure, run_config, warm_up, warmup_requests
    from sluice.loadtest.scrape import ScrapeSettings
    from sluice.loadtest.sweep import (
        SweepDimension,
        SweepPlan,
        parse_values,
        run_sweep,
        step_load,
        sweep_document,
    )
    from sluice.loadtest.tables import error_rows, summary_sections, sweep_headers, sweep_headline, sweep_rows
    from sluice.loadtest.target import (
        CHAT_ENDPOINT,
        BenchTarget,
        TargetError,
        backend_endpoint,
        endpoint_is_chat,
        parse_extra_body,
        parse_headers,
    )

_MODULE_NAMES = {  # module -> its names that load on first use
    "client": ("run_async",),
    "compare": ("CompareError", "compare_results", "load_result", "parse_rule"),
    "datasets": ("DatasetSpec", "make_requests"),
    "plots": ("run_figures", "sweep_figures", "write_figures"),
    "records": ("document_records", "load_beside", "records_path", "scrapes_path", "write_csv", "write_jsonl"),
    "report": ("is_sweep", "render_report"),
    "runner": ("LoadSettings", "measure", "run_config", "warm_up", "warmup_requests"),
    "scrape": ("ScrapeSettings",),
    "sweep": ("SweepDimension", "SweepPlan", "parse_values", "run_sweep", "step_load", "sweep_document"),
    "tables": ("error_rows", "summary_sections", "sweep_headers", "sweep_headline", "sweep_rows"),
    "target": ("CHAT_ENDPOINT", "BenchTarget", "TargetError", "backend_endpoint", "endpoint_is_chat",
               "parse_extra_body", "parse_headers"),
}
_ON_FIRST_USE = {name: f"{__name__}.{module}" for module, names in _MODULE_NAMES.items() for name in names}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "CHAT_ENDPOINT",
    "SCRAPES_FIELD",
    "SLO_METRICS",
    "BenchTarget",
    "BenchmarkSummary",
    "CompareError",
    "DatasetSpec",
    "LiveStats",
    "LoadSettings",
    "RequestResult",
    "ScrapeSettings",
    "SweepDimension",
    "SweepPlan",
    "TargetError",
    "backend_endpoint",
    "compare_results",
    "document_records",
    "endpoint_is_chat",
    "error_rows",
    "is_sweep",
    "load_beside",
    "load_result",
    "make_requests",
    "measure",
    "parse_extra_body",
    "parse_headers",
    "parse_rule",
    "parse_values",
    "records_path",
    "render_report",
    "run_async",
    "run_config",
    "run_figures",
    "run_sweep",
    "scrapes_path",
    "step_load",
    "summarize",
    "summary_sections",
    "sweep_document",
    "sweep_figures",
    "sweep_headers",
    "sweep_headline",
    "sweep_rows",
    "warm_up",
    "warmup_requests",
    "without_detail",
    "write_csv",
    "write_figures",
    "write_jsonl",
]
