"""PNG chart of a cost report (matplotlib's Agg renderer, no display): bars by group, or by day stacked by model."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sluice.cost.report import CostReport, format_usd

MAX_BARS = 20  # groups beyond the costliest 20 are summed into one "other" bar
MAX_STACKS = 8  # models beyond the costliest 8 share one "other" colour in the day chart


def plot_cost_report(report: CostReport, path: str | Path) -> Path:
    target = Path(path)
    figure = Figure(figsize=(10, 6), layout="constrained")  # no pyplot: no global state, no GUI backend
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    if report.by == "day":
        _stacked_days(axis, report)
    else:
        _bars(axis, report)
    total = report.total
    axis.set_title(f"Cost by {report.by}: {format_usd(total.cost_usd)} over {total.requests:,} requests")
    axis.grid(True, axis="y" if report.by == "day" else "x", alpha=0.3)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    return target


def _bars(axis, report: CostReport) -> None:  # type: ignore[no-untyped-def]
    rows = report.rows[:MAX_BARS]
    labels = [row.group for row in rows]
    costs = [row.cost_usd for row in rows]
    rest = report.rows[MAX_BARS:]
    if rest:
        labels.append(f"other ({len(rest)})")
        costs.append(sum(row.cost_usd for row in rest))
    positions = range(len(labels))
    bars = axis.barh(list(positions), costs, color="tab:blue")
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()  # costliest on top
    axis.set_xlabel("cost (USD)")
    axis.bar_label(bars, labels=[f"{format_usd(cost)} ({report.share_of(cost):.0%})" for cost in costs], padding=3,
                   fontsize=8)
    axis.margins(x=0.2)


def _stacked_days(axis, report: CostReport) -> None:  # type: ignore[no-untyped-def]
    days = [row.group for row in report.rows]
    by_model: dict[str, float] = {}
    for item in report.day_model:
        by_model[item.model] = by_model.get(item.model, 0.0) + item.cost_usd
    ranked = sorted(by_model, key=lambda model: -by_model[model])
    shown = ranked[:MAX_STACKS]
    series = {model: [0.0] * len(days) for model in [*shown, "other"]}
    index = {day: i for i, day in enumerate(days)}
    for item in report.day_model:
        series[item.model if item.model in shown else "other"][index[item.day]] += item.cost_usd
    bottom = [0.0] * len(days)
    for model, costs in series.items():
        if not any(costs):
            continue
        axis.bar(days, costs, bottom=bottom, label=model)
        bottom = [b + c for b, c in zip(bottom, costs, strict=True)]
    axis.set_ylabel("cost (USD)")
    axis.set_xlabel("day (UTC)")
    axis.tick_params(axis="x", labelrotation=45)
    if series:
        axis.legend(title="model", fontsize=8)


__all__ = ["plot_cost_report"]
