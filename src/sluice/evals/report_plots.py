"""The report's view of a run (each case over its repeats) and its plots: matplotlib Figures without pyplot (no
global state, no GUI backend), saved as PNG into the page."""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
from matplotlib.figure import Figure

from sluice.evals.results import CaseResult, PassRate, RunHeader, ScoreResult, Summary

REGRESSION, FIX, SAME = "#c0392b", "#27ae60", "#8c96a0"
RUN_COLORS = ("#8c96a0", "#2b6cb0")  # baseline, candidate; a single run is drawn in the candidate's colour


@dataclass(slots=True, frozen=True)
class CaseOutcome:
    """One case of a run over its repeats: how many passed, its mean score, and the repeat the report shows."""

    case_id: str
    passed: int  # repeats that passed
    repeats: int
    mean_score: float  # mean over repeats of the mean scorer value; an errored repeat (no scores) counts as 0
    shown: CaseResult  # the first repeat that agrees with the case's verdict

    @property
    def verdict(self) -> bool:
        """Passed by at least half of its repeats: the rule of `gate.flipped_cases`, so that the report's counts
        agree with the flips it lists (and with `sluice eval gate`)."""
        return _passes(self.passed, self.repeats)


def _passes(passed: int, repeats: int) -> bool:
    return 2 * passed >= repeats


def case_outcomes(results: Sequence[CaseResult]) -> dict[str, CaseOutcome]:
    """Each case's outcome over its repeats, in the order the cases first appear."""
    by_case: dict[str, list[CaseResult]] = {}
    for result in results:
        by_case.setdefault(result.case_id, []).append(result)
    outcomes = {}
    for case_id, repeats in by_case.items():
        passed = sum(result.passed for result in repeats)
        verdict = _passes(passed, len(repeats))
        shown = next((result for result in repeats if result.passed == verdict), repeats[0])
        mean = sum(_repeat_score(result) for result in repeats) / len(repeats)
        outcomes[case_id] = CaseOutcome(case_id, passed, len(repeats), mean, shown)
    return outcomes


@dataclass(slots=True, frozen=True)
class RunView:
    label: str
    header: RunHeader
    results: list[CaseResult]
    summary: Summary
    outcomes: dict[str, CaseOutcome]


def verdict_counts(before: RunView, after: RunView) -> Counter[tuple[bool, bool]]:
    """(baseline verdict, candidate verdict) -> how many cases of both runs."""
    return Counter((before.outcomes[case_id].verdict, outcome.verdict)
                   for case_id, outcome in after.outcomes.items() if case_id in before.outcomes)


def _repeat_score(result: CaseResult) -> float:
    values = [score.value for score in result.scores if not errored(score)]
    return sum(values) / len(values) if values else 0.0


def errored(score: ScoreResult) -> bool:
    """A score a model-backed scorer could not give; read with getattr: results files written before the field."""
    return getattr(score, "error", None) is not None


# Plots: matplotlib Figures without pyplot (no global state, no GUI backend), saved as PNG into the page.

def plots(views: list[RunView]) -> list[str]:
    drawn = [("Score distributions", "ScoreResult.value per scorer type; scorer errors left out.",
              _score_figure(views), "no scores: every call errored, or there are no results"),
             ("Pass rate by tag", "every result, and the results of the cases with each tag; bars show the 95 % "
              "Wilson interval.", _tag_figure(views), "no results")]
    if len(views) == 2:
        drawn.append(("Each case, before and after", "per-case mean score over repeats; a marker's size and "
                      "number say how many cases share the point.", _case_figure(*views), "no case in both runs"))
    drawn.append(("Latency", "answered calls only.", _latency_figure(views), "no answered calls"))
    return [f"<h3>{escape(name)}</h3>" + (_image(figure, name, caption) if figure is not None
                                          else f'<p class="note">No plot: {escape(missing)}.</p>')
            for name, caption, figure, missing in drawn]


def _image(figure: Figure, name: str, caption: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _colors(views: list[RunView]) -> tuple[str, ...]:
    return RUN_COLORS[-len(views):]


def _score_figure(views: list[RunView]) -> Figure | None:
    kinds = sorted({score.type for view in views for result in view.results for score in result.scores})
    if not kinds:
        return None
    columns = min(3, len(kinds))
    rows = math.ceil(len(kinds) / columns)
    figure = Figure(figsize=(3.6 * columns + 0.6, 2.8 * rows + 0.5), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, kind in zip(grid, kinds, strict=False):
        values = [[score.value for result in view.results for score in result.scores
                   if score.type == kind and not errored(score)] for view in views]
        labels = [f"{view.label} (n={len(samples)})" for view, samples in zip(views, values, strict=True)]
        if any(values):
            axes.hist([np.clip(samples, 0, 1) for samples in values], bins=np.linspace(0, 1, 11),
                      color=list(_colors(views)), label=labels)
            axes.legend(fontsize=7)
        else:
            axes.text(0.5, 0.5, "no scores", ha="center", va="center", transform=axes.transAxes)
        axes.set(title=kind, xlim=(0, 1), xlabel="score", ylabel="scores")
        axes.grid(alpha=0.3)
    for axes in grid[len(kinds):]:
        axes.set_visible(False)
    return figure


def _tag_figure(views: list[RunView]) -> Figure | None:
    if not any(view.results for view in views):
        return None
    names = ["all results", *sorted({tag for view in views for tag in view.summary.by_tag})]
    height = 0.8 / len(views)
    figure = Figure(figsize=(9, 1.4 + 0.32 * len(names) * len(views)), layout="constrained")
    axes = figure.subplots()
    for index, (view, color) in enumerate(zip(views, _colors(views), strict=True)):
        rates = [view.summary.overall, *(view.summary.by_tag.get(name, PassRate(0, 0)) for name in names[1:])]
        values = [rate.rate or 0.0 for rate in rates]
        intervals = [rate.interval if rate.total else (value, value) for rate, value in zip(rates, values, strict=True)]
        errors = [[max(0.0, value - low) for value, (low, _) in zip(values, intervals, strict=True)],  # float dust
                  [max(0.0, high - value) for value, (_, high) in zip(values, intervals, strict=True)]]
        positions = np.arange(len(names)) + (index - (len(views) - 1) / 2) * height
        axes.barh(positions, values, height, xerr=errors, color=color, label=view.label, capsize=3,
                  error_kw={"elinewidth": 1, "ecolor": "#3e4c59"})
        for position, rate, (_, high) in zip(positions, rates, intervals, strict=True):
            axes.text(high + 0.01, position, f"{rate.passed}/{rate.total}", va="center", fontsize=7)
    axes.set_yticks(np.arange(len(names)), names)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1.15), xlabel="pass rate (95 % Wilson interval)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return figure


def _case_figure(before: RunView, after: RunView) -> Figure | None:
    common = [case_id for case_id in after.outcomes if case_id in before.outcomes]
    if not common:
        return None
    figure = Figure(figsize=(10, 4.4), layout="constrained")
    scatter, matrix = figure.subplots(1, 2, width_ratios=(3, 2))
    points: Counter[tuple[float, float, str]] = Counter()
    for case_id in common:
        was, now = before.outcomes[case_id], after.outcomes[case_id]
        kind = "same" if was.verdict == now.verdict else "regression" if was.verdict else "fix"
        points[round(was.mean_score, 3), round(now.mean_score, 3), kind] += 1
    for kind, color in (("same", SAME), ("regression", REGRESSION), ("fix", FIX)):
        mine = [(x, y, n) for (x, y, k), n in points.items() if k == kind]
        if not mine:
            continue
        total = sum(n for _, _, n in mine)
        scatter.scatter([x for x, _, _ in mine], [y for _, y, _ in mine], s=[24 + 36 * math.sqrt(n) for *_, n in mine],
                        color=color, alpha=0.7, label=f"{kind} ({total})")
        for x, y, n in mine:
            if n > 1:
                scatter.annotate(str(n), (x, y), fontsize=7, ha="center", va="center")
    scatter.plot([0, 1], [0, 1], linestyle=":", color="#9aa5b1")
    scatter.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel=f"{before.label}: mean score",
                ylabel=f"{after.label}: mean score", title="per case (above the line: better)")
    scatter.grid(alpha=0.3)
    scatter.legend(fontsize=8, loc="best")
    verdicts = verdict_counts(before, after)
    counts = np.array([[verdicts[was, now] for now in (True, False)] for was in (True, False)])
    matrix.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        matrix.text(column, row, str(count), ha="center", va="center", fontsize=12,
                    color="white" if count > counts.max() / 2 else "#1f2933")
    matrix.set_xticks([0, 1], [f"{after.label}\npass", f"{after.label}\nfail"])
    matrix.set_yticks([0, 1], [f"{before.label}\npass", f"{before.label}\nfail"])
    matrix.set_title("case verdicts\n(a pass: at least half the repeats passed)", fontsize=10)
    return figure


def _latency_figure(views: list[RunView]) -> Figure | None:
    samples = [np.sort([result.latency_s for result in view.results if result.error is None]) for view in views]
    if not any(len(values) for values in samples):
        return None
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    histogram, ecdf = figure.subplots(1, 2)
    everything = np.concatenate(samples)
    bins = np.linspace(everything.min(), everything.max() or 1.0, 21)
    for view, values, color in zip(views, samples, _colors(views), strict=True):
        if not len(values):
            continue
        label = f"{view.label} (n={len(values)}, P50 {np.percentile(values, 50):.2f} s)"
        histogram.hist(values, bins=bins, color=color, alpha=0.6, label=label)
        ecdf.step(values, np.arange(1, len(values) + 1) / len(values), where="post", color=color, label=label)
    histogram.set(xlabel="latency (s)", ylabel="calls")
    ecdf.set(xlabel="latency (s)", ylabel="share of calls ≤ x", ylim=(0, 1.02))
    for axes in (histogram, ecdf):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure


__all__ = ["RUN_COLORS", "CaseOutcome", "RunView", "case_outcomes", "errored", "plots", "verdict_counts"]
