"""The simulator's outputs as text and a figure; writing them to files is `__main__`'s job."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from balancer.sim.engine import RunResult

# matplotlib is the bench extra's, not a runtime dependency: it is imported only when a chart
# is drawn, so importing the balancer (as every provider does) never needs it.
if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The runs drawn over time (the rest would only clutter the panel).
_TIMELINE_LABELS = ("lbh", "lbh+headroom", "round_robin", "least_inflight", "p2c")

_COLUMNS = (
    "scenario",
    "label",
    "rate",
    "tasks",
    "completed",
    "completion_s",
    "throughput",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "held",
    "paused_s",
    "forced",
    "recycles",
    "crashes",
    "requeued",
)


def table(results: Sequence[RunResult]) -> str:
    """The per-strategy table the command prints, one block per scenario."""
    head = (
        f"{'strategy':15} {'done':>11} {'complete_s':>10} {'tasks/s':>8} {'p50_ms':>9} "
        f"{'p95_ms':>9} {'p99_ms':>9} {'held':>6} {'paused_s':>8} {'forced':>6} "
        f"{'restarts':>11}"
    )
    lines: list[str] = []
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = [r for r in results if r.scenario == scenario]
        lines += ["", f"scenario {scenario}: {rows[0].tasks} tasks", head]
        for r in rows:
            complete = "cut off" if math.isnan(r.completion_s) else f"{r.completion_s:.1f}"
            restarts = f"{r.recycles}+{r.crashes} oom"
            lines.append(
                f"{r.label:15} {r.completed:5d}/{r.tasks:<5d} {complete:>10} "
                f"{r.throughput:8.1f} {r.p50_ms:9.0f} {r.p95_ms:9.0f} {r.p99_ms:9.0f} "
                f"{r.held:6d} {r.paused_s:8.1f} {r.forced:6d} {restarts:>11}"
            )
    return "\n".join(lines[1:])


def csv_text(results: Sequence[RunResult]) -> str:
    """One row per run, every measure but the timeline."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for r in results:
        writer.writerow([_cell(getattr(r, column)) for column in _COLUMNS])
    return out.getvalue()


def timeline_csv_text(results: Sequence[RunResult]) -> str:
    """One row per run and sampling interval: completions, queue, LBH."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("scenario", "label", "t", "completed", "waiting", "lbh"))
    for r in results:
        for s in r.timeline:
            writer.writerow((r.scenario, r.label, s.t, s.completed, s.waiting, f"{s.lbh:.4f}"))
    return out.getvalue()


def _cell(value: object) -> object:
    return f"{value:.3f}" if isinstance(value, float) else value


def chart(results: Sequence[RunResult], *, time_limit_s: float) -> Figure:
    """Four panels: p99 latency and completion time per scenario and strategy, completions
    over time in the last scenario, and LBH's health with its queue in that scenario."""
    from matplotlib.figure import Figure

    scenarios = list(dict.fromkeys(r.scenario for r in results))
    labels = list(dict.fromkeys(r.label for r in results))
    # A bare Figure (no pyplot): nothing global, no display backend, freed with the object.
    fig = Figure(figsize=(14, 9.5), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False)
    _bars(axes[0][0], results, scenarios, labels, "p99_ms", "p99 latency (ms, log scale)")
    axes[0][0].set_yscale("log")
    axes[0][0].set_ylim(top=axes[0][0].get_ylim()[1] * 30)  # room for the legend
    _bars(
        axes[0][1],
        results,
        scenarios,
        labels,
        "completion_s",
        f"completion time of the trace (s; hatched: cut off at {time_limit_s:.0f} s)",
        cut_off=time_limit_s,
    )
    axes[0][1].set_ylim(0, time_limit_s * 1.3)
    last = scenarios[-1]
    _throughput(axes[1][0], [r for r in results if r.scenario == last], last)
    _health(axes[1][1], [r for r in results if r.scenario == last and r.label.startswith("lbh")])
    fig.suptitle("LBH against the baselines on one simulated trace per scenario")
    return fig


def _bars(
    ax: Axes,
    results: Sequence[RunResult],
    scenarios: list[str],
    labels: list[str],
    field: str,
    title: str,
    cut_off: float | None = None,
) -> None:
    from matplotlib import colormaps

    width = 0.8 / len(labels)
    cmap = colormaps["tab10"]
    for k, label in enumerate(labels):
        for j, scenario in enumerate(scenarios):
            run = next((r for r in results if r.scenario == scenario and r.label == label), None)
            if run is None:
                continue
            value: float = getattr(run, field)
            cut = cut_off is not None and math.isnan(value)
            if cut_off is not None and cut:
                value = cut_off
            ax.bar(
                j + (k - (len(labels) - 1) / 2) * width,
                value,
                width,
                color=cmap(k),
                hatch="//" if cut else None,
                label=label if j == 0 else None,
            )
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncols=4, loc="upper left")


def _throughput(ax: Axes, results: Sequence[RunResult], scenario: str) -> None:
    window = 5  # seconds: the per-second counts swing too much to read
    for r in results:
        if r.label in _TIMELINE_LABELS:
            ax.plot([s.t for s in r.timeline], _mean(r, window), label=r.label, lw=1.2)
    ax.set_title(f"tasks completed per second ({window} s mean), scenario {scenario}", fontsize=10)
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8, ncols=2)


def _mean(run: RunResult, window: int) -> list[float]:
    """Centred moving mean of the completions per second (the raw counts if too few)."""
    counts = [float(s.completed) for s in run.timeline]
    if len(counts) < window:
        return counts
    smooth: list[float] = np.convolve(counts, np.ones(window) / window, "same").tolist()
    return smooth


def _health(ax: Axes, results: Sequence[RunResult]) -> None:
    queue = ax.twinx()
    for r in results:
        ts = [s.t for s in r.timeline]
        ax.plot(ts, [s.lbh for s in r.timeline], lw=1, label=f"{r.label}: LBH")
        queue.plot(ts, [s.waiting for s in r.timeline], lw=1, ls="--", label=f"{r.label}: queue")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_title("LBH (solid, left) and tasks waiting in the queue (dashed, right)", fontsize=10)
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8, loc="upper left")
    queue.legend(fontsize=8, loc="upper right")
