"""How `sluice deploy` prints deployments, changes, canary verdicts and the audit trail (rich)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sluice.cli.common import console


def print_change(result: dict[str, Any]) -> None:
    d = result["deployment"]
    console.print(f"[bold]{escape(d['model'])}[/] v{d['version']}: stable {escape(targets_text(d['stable']))}, "
                  f"candidate {escape(targets_text(d['candidate']) or '-')} at [bold]{d['candidate_weight']:g} %[/]"
                  f" ({d['strategy']})")
    if d.get("shadow"):
        console.print(f"shadow {escape(shadow_text(d))}")
    run = result.get("canary")
    if run:
        console.print(f"canary {run['id']}: [bold]{run['state']}[/], step {run['step']}/{len(run['steps'])} "
                      f"({steps_text(run)}), {run['interval_s']:g} s a step")


def overview_table(deployments: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("model", "ver", "strategy", "stable", "candidate", "weight", "shadow", "canary", "source"):
        table.add_column(column, overflow="fold", justify="right" if column in ("ver", "weight") else "left")
    for d in deployments:
        run = d["canary"]
        canary = "-" if run is None else f"{run['state']} {run['step']}/{len(run['steps'])}"
        table.add_row(Text(d["model"]), str(d["version"]), d["strategy"], Text(targets_text(d["stable"])),
                      Text(targets_text(d["candidate"]) or "-"), f"{d['candidate_weight']:g} %",
                      Text(shadow_text(d) or "-"), canary,
                      d["source"] + (" [yellow](problem)[/]" if d["problem"] else ""))
    return table


def print_detail(view: dict[str, Any]) -> None:
    print_change({"deployment": view, "canary": view["canary"]})
    if view["problem"]:
        console.print(f"[yellow]{escape(view['problem'])}[/]")
    run = view["canary"]
    if run is None:
        return
    if run["next_analysis_at"]:
        console.print(f"next analysis in {max(0.0, run['next_analysis_at'] - time.time()):.0f} s "
                      f"(extensions {run['extensions']}/{run['settings']['max_extensions']})")
    for verdict in reversed(run["verdicts"]):
        print_verdict_line(verdict)


def print_verdict_line(verdict: dict[str, Any]) -> None:
    evidence = verdict["evidence"]
    colour = {"pass": "green", "fail": "red"}.get(verdict["verdict"], "yellow")
    console.print(f"  {time_text(verdict['created_at'])} step {verdict['step']} at {verdict['weight']:g} %: "
                  f"[{colour}]{verdict['verdict']}[/] -> {verdict['action']}  "
                  f"(stable n={evidence['stable']['requests']}, candidate n={evidence['candidate']['requests']})"
                  + "".join(f"\n    {escape(reason)}" for reason in evidence["reasons"]))


def print_verdict(result: dict[str, Any]) -> None:
    colour = {"pass": "green", "fail": "red"}.get(result["verdict"], "yellow")
    console.print(f"[bold]{escape(result['model'])}[/]: [{colour}]{result['verdict']}[/] over "
                  f"{result['window_end'] - result['window_start']:.0f} s (alpha {result['alpha']}, "
                  f"min {result['min_requests']} requests a side)")
    sides = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("side", "requests", "errors", "TTFT p50", "TTFT p99", "TPOT p99", "E2E p99", "cost/req"):
        sides.add_column(column, justify="left" if column == "side" else "right")
    for name in ("stable", "candidate"):
        s = result[name]
        cost = "-" if s["cost_mean_usd"] is None else f"${s['cost_mean_usd']:.6f}"
        sides.add_row(name, str(s["requests"]), f"{s['failure_rate']:.2%}", ms_text(s["ttft_p50_s"]),
                      ms_text(s["ttft_p99_s"]), ms_text(s["tpot_p99_s"]), ms_text(s["e2e_p99_s"]), cost)
    console.print(sides)
    checks = Table(box=None, header_style="bold", pad_edge=False, caption="latency in ms; increase: error rate in "
                   "points, the others relative")
    for column in ("check", "outcome", "increase", "limit", "p-value", "note"):
        checks.add_column(column, overflow="fold")
    for c in result["checks"]:
        pct = c["name"] != "error_rate"
        checks.add_row(c["name"], c["outcome"], share_text(c["increase"], pct), share_text(c["threshold"], pct),
                       "-" if c["p_value"] is None else f"{c['p_value']:.3g}", Text(c["note"]))
    console.print(checks)
    for reason in result["reasons"]:
        console.print(f"- {escape(reason)}")


def targets_text(targets: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t['backend']}:{t['model']}" + ("" if t["weight"] == 100 else f"@{t['weight']:g}")
                     for t in targets)


def shadow_text(deployment: dict[str, Any]) -> str:
    """`l4:qwen3-8b (25 %, ≤ 8 in flight)`, or "" when nothing is mirrored."""
    if not deployment.get("shadow"):
        return ""
    return (f"{targets_text(deployment['shadow'])} ({deployment['shadow_sample_rate'] * 100:g} %, "
            f"≤ {deployment['shadow_max_concurrency']} in flight)")


def steps_text(run: dict[str, Any]) -> str:
    return " -> ".join(f"[bold]{w:g}[/]" if i == run["step"] - 1 else f"{w:g}" for i, w in enumerate(run["steps"]))


def diff_text(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    if before is None:
        return "created"
    shown = {"strategy": str, "stable": targets_text, "candidate": lambda targets: targets_text(targets or []) or "-",
             "candidate_weight": lambda weight: f"{weight:g} %",
             "shadow": lambda targets: targets_text(targets or []) or "-",
             "shadow_sample_rate": lambda rate: f"{(1.0 if rate is None else rate) * 100:g} %",
             "shadow_max_concurrency": str}
    labels = {"candidate_weight": "weight", "shadow_sample_rate": "shadow rate",
              "shadow_max_concurrency": "shadow max in flight"}
    changes = [f"{labels.get(name, name)} {show(before.get(name))} -> {show(after.get(name))}"
               for name, show in shown.items() if before.get(name) != after.get(name)]
    return "; ".join(changes) or "no change"


def time_text(unix_s: float) -> str:
    return dt.datetime.fromtimestamp(unix_s).strftime("%Y-%m-%d %H:%M:%S")


def ms_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def share_text(value: float | None, relative: bool) -> str:
    if value is None:
        return "-"
    return f"{value:+.0%}" if relative else f"{value * 100:+.2f} pp"


__all__ = [
    "diff_text",
    "ms_text",
    "overview_table",
    "print_change",
    "print_detail",
    "print_verdict",
    "print_verdict_line",
    "shadow_text",
    "share_text",
    "steps_text",
    "targets_text",
    "time_text",
]
