"""Per-request records as JSONL and CSV files beside the result JSON, and read back into a result for `bench report`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sluice.loadtest.metrics import MS_PER_S, SCRAPES_FIELD

# record field <- per-request array of a detailed result (metrics.per_request_detail)
_FROM_ARRAYS = {"turn": "turn_indices", "start_s": "start_times", "ttft_s": "ttfts", "e2el_s": "e2els",
                "input_tokens": "input_lens", "output_tokens": "output_lens", "itl_s": "itls", "error": "errors",
                "error_detail": "error_details", "generated_text": "generated_texts"}
CSV_FIELDS = ("step", "index", "turn", "start_s", "ttft_ms", "tpot_ms", "e2el_ms", "input_tokens", "output_tokens",
              "chunks", "mean_itl_ms", "error", "error_detail")


def records_path(result_path: Path) -> Path:
    """`result.json` -> `result.requests.jsonl` (one record per request)."""
    return result_path.with_name(f"{result_path.stem}.requests.jsonl")


def scrapes_path(result_path: Path) -> Path:
    """`result.json` -> `result.metrics.jsonl` (one line per /metrics scrape)."""
    return result_path.with_name(f"{result_path.stem}.metrics.jsonl")


def has_detail(result: Mapping[str, Any]) -> bool:
    """Whether a result carries the per-request arrays the run plots need (`--save-detailed`, or read back
    from its records)."""
    return all(isinstance(result.get(name), list) for name in ("ttfts", "itls", "e2els", "start_times", "errors"))


def records_of(result: Mapping[str, Any], step: float | None = None) -> list[dict[str, Any]]:
    """One dict per request (in issue order) from a result's per-request arrays; `step` tags a sweep's."""
    count = len(result["errors"])
    records = []
    for index in range(count):
        record: dict[str, Any] = {} if step is None else {"step": step}
        record["index"] = index
        for name, array in _FROM_ARRAYS.items():
            values = result.get(array)
            record[name] = values[index] if isinstance(values, list) and index < len(values) else None
        records.append(record)
    return records


def document_records(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of a run, or of every step of a sweep (tagged with the step's value)."""
    if isinstance(document.get("steps"), list):
        return [r for step in document["steps"] if has_detail(step) for r in records_of(step, step["sweep_value"])]
    return records_of(document) if has_detail(document) else []


def arrays_of(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The per-request arrays of a result from its records (the inverse of `records_of`)."""
    arrays = {array: [record.get(name) for record in records] for name, array in _FROM_ARRAYS.items()}
    arrays["turn_indices"] = [turn or 0 for turn in arrays["turn_indices"]]
    arrays["error_details"] = [detail or "" for detail in arrays["error_details"]]
    return arrays


def with_records(document: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A result (run or sweep) with its per-request arrays put back from records (a sweep's by step)."""
    if isinstance(document.get("steps"), list):
        steps = [step if has_detail(step) else {**step, **arrays_of([r for r in records
                                                                     if r.get("step") == step["sweep_value"]])}
                 for step in document["steps"]]
        return {**document, "steps": steps}
    return dict(document) if has_detail(document) else {**document, **arrays_of(records)}


def load_beside(document: Mapping[str, Any], result_path: Path) -> dict[str, Any]:
    """A saved result with what was saved beside it: its per-request records and its /metrics scrapes."""
    loaded = dict(document)
    requests = records_path(result_path)
    if requests.exists():
        loaded = with_records(loaded, read_jsonl(requests))
    scrapes = scrapes_path(result_path)
    if scrapes.exists() and SCRAPES_FIELD not in loaded:
        loaded[SCRAPES_FIELD] = read_jsonl(scrapes)
    return loaded


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if any(not isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: every line must be a JSON object")
    return rows


def csv_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a flat CSV row: times in ms, the ITL list as its count and mean, no generated text."""
    ok = not record.get("error")
    itls = record.get("itl_s") or []
    out_tokens = record.get("output_tokens") or 0
    ttft, e2el = record.get("ttft_s"), record.get("e2el_s")
    tpot = (e2el - ttft) / (out_tokens - 1) * MS_PER_S if ok and out_tokens > 1 and None not in (ttft, e2el) else None
    return {"step": record.get("step"), "index": record.get("index"), "turn": record.get("turn"),
            "start_s": _round(record.get("start_s"), 6), "ttft_ms": _ms(ttft) if ok else None,
            "tpot_ms": _round(tpot, 3), "e2el_ms": _ms(e2el), "input_tokens": record.get("input_tokens"),
            "output_tokens": out_tokens, "chunks": len(itls) + 1 if ok else 0,
            "mean_itl_ms": _ms(sum(itls) / len(itls)) if itls else None, "error": record.get("error") or "",
            "error_detail": record.get("error_detail") or ""}


def write_csv(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """The records as CSV (one row per request, `CSV_FIELDS`); returns the number of rows."""
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for record in records:
            writer.writerow(csv_row(record))
            rows += 1
    return rows


def _ms(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s * MS_PER_S, 3)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)

