"""The simulator's outputs as text and a figure; writing them to files is `__main__`'s job."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from balancer.sim.engine import FIXED_DELTA_LABEL, RunResult, SimConfig

# matplotlib is the bench extra's, not a runtime dependency: it is imported only when a chart
# is drawn, so importing the balancer (as every provider does) never needs it.
if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The runs drawn over time (the rest would only clutter the panel).
_TIMELINE_LABELS = ("lbh", "lbh+headroom", "lbh_adaptive", "round_robin", "least_inflight", "p2c")

BASELINE_LABELS = ("round_robin", "random", "least_inflight", "p2c", "p2c+recycle", "single")
"""The runs lbh_adaptive's targets compare with: every baseline, with or without recycling."""

ADAPTIVE_LABEL = "lbh_adaptive"
ADAPTIVE_LABELS = (ADAPTIVE_LABEL, FIXED_DELTA_LABEL)
"""The runs whose targets the seeds table checks: lbh_adaptive, and its variant with the
spec's constant delta (the rule before the learnt delta)."""
P99_TARGET = 1.1  # lbh_adaptive's p99 at most this times the best baseline's
IN_TIME_S = 10.0  # a trace finished within this of its last arrival is finished in time
BURST_P99_MS = 10_000.0  # lbh+headroom's burst result, which lbh_adaptive must keep

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


def seeds_csv_text(by_seed: Mapping[int, Sequence[RunResult]]) -> str:
    """One row per seed and run, every measure but the timeline."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("seed", *_COLUMNS))
    for seed, results in by_seed.items():
        for r in results:
            writer.writerow([seed, *(_cell(getattr(r, column)) for column in _COLUMNS)])
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


def seeds_table(
    by_seed: Mapping[int, Sequence[RunResult]], configs: Mapping[str, SimConfig]
) -> str:
    """Median and spread (min-max) over the seeds per scenario and strategy, then
    lbh_adaptive's targets scenario by scenario."""
    seeds = list(by_seed)
    runs = [r for results in by_seed.values() for r in results]
    lines = [f"over seeds {_seed_list(seeds)}: median [min-max]"]
    for scenario in dict.fromkeys(r.scenario for r in runs):
        lines += ["", f"scenario {scenario}", _SPREAD_HEAD]
        for label in dict.fromkeys(r.label for r in runs if r.scenario == scenario):
            same = [r for r in runs if (r.scenario, r.label) == (scenario, label)]
            lines.append(_spread_row(label, same))
    for label in ADAPTIVE_LABELS:
        if any(r.label == label for r in runs):
            lines += ["", *_targets(by_seed, configs, label)]
    return "\n".join(lines)


_SPREAD_HEAD = (
    f"{'strategy':15} {'p99_ms':>22} {'complete_s':>19} {'oom kills':>13} {'recycles':>11} "
    f"{'finished':>8}"
)


def _spread_row(label: str, runs: Sequence[RunResult]) -> str:
    p99 = _spread([r.p99_ms for r in runs], "{:.0f}")
    complete = _spread([r.completion_s for r in runs], "{:.1f}")
    oom = _spread([float(r.crashes) for r in runs], "{:.0f}")
    recycles = _spread([float(r.recycles) for r in runs], "{:.0f}")
    finished = f"{sum(r.completed == r.tasks for r in runs)}/{len(runs)}"
    return f"{label:15} {p99:>22} {complete:>19} {oom:>13} {recycles:>11} {finished:>8}"


def _spread(values: Sequence[float], fmt: str) -> str:
    """'median [min-max]'; a cut-off run (nan) counts as the longest, and shows as 'cut'."""
    ranked = sorted(values, key=lambda v: (math.isnan(v), v))
    return f"{_fmt(_median(ranked), fmt)} [{_fmt(ranked[0], fmt)}-{_fmt(ranked[-1], fmt)}]"


def _median(ranked: Sequence[float]) -> float:
    """The median of values already in order (nan if the middle is a cut-off run)."""
    mid = len(ranked) // 2
    return ranked[mid] if len(ranked) % 2 else (ranked[mid - 1] + ranked[mid]) / 2


def _fmt(value: float, fmt: str) -> str:
    return "cut" if math.isnan(value) else fmt.format(value)


def _seed_list(seeds: Sequence[int]) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else ",".join(map(str, seeds))


def _targets(
    by_seed: Mapping[int, Sequence[RunResult]], configs: Mapping[str, SimConfig], label: str
) -> list[str]:
    """Per scenario: `label`'s p99 over the best baseline's, seed by seed; whether it
    finished in time; and, in bursts, its p99 and OOM kills at the first seed."""
    seeds = list(by_seed)
    lines = [
        f"{label} targets: p99 <= {P99_TARGET:g} x the best baseline's "
        f"({', '.join(BASELINE_LABELS)}), trace finished within {IN_TIME_S:g} s of its last "
        f"arrival; in bursts, at seed {seeds[0]}, p99 <= {BURST_P99_MS / 1000:g} s and 0 OOM kills",
        f"{'scenario':12} {'p99 / best baseline p99, per seed':>36} {'median':>7} {'worst':>6} "
        f"{'in time':>8} {'holds':>6}",
    ]
    scenarios = dict.fromkeys(r.scenario for results in by_seed.values() for r in results)
    return lines + [
        _target_row(scenario, by_seed, configs[scenario], label) for scenario in scenarios
    ]


def _target_row(
    scenario: str, by_seed: Mapping[int, Sequence[RunResult]], config: SimConfig, label: str
) -> str:
    """One scenario's line of the targets: ratios per seed, median, worst, in time, verdict."""
    ratios, on_time = [], 0
    for results in by_seed.values():
        rows = [r for r in results if r.scenario == scenario]
        mine = next(r for r in rows if r.label == label)
        best = min(r.p99_ms for r in rows if r.label in BASELINE_LABELS)
        ratios.append(mine.p99_ms / best if mine.completed == mine.tasks else math.inf)
        on_time += mine.completion_s <= config.duration_s + IN_TIME_S  # nan (cut off): False
    holds = max(ratios) <= P99_TARGET and on_time == len(ratios)
    if config.burst:
        first = next(iter(by_seed.values()))
        mine = next(r for r in first if r.scenario == scenario and r.label == label)
        holds = holds and mine.p99_ms <= BURST_P99_MS and mine.crashes == 0
    per_seed = " ".join(f"{x:.2f}" for x in ratios)
    return (
        f"{scenario:12} {per_seed:>36} {_median(sorted(ratios)):7.2f} "
        f"{max(ratios):6.2f} {on_time:>4}/{len(ratios):<3} {'yes' if holds else 'NO':>6}"
    )
