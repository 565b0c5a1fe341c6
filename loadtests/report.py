"""A cell's figures from the Locust samples, and the run's CSV, markdown and charts."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.cpu import CPU_KINDS, ms_per_request
from loadtests.mix import PLATFORM_QUEUED
from loadtests.pacing import offered_rps
from loadtests.sampler import ResourceSample, ZoneSample


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    system: str  # "monolith" or an ethgw strategy
    nodes: int
    users: int
    requests: int
    scenario: str = "uniform"  # "slow-node": node-1 under a CPU cap; "node-bound": every node
    # The allotment of every service node in the node-bound scenario (0: not confined).
    node_cores: float = 0.0
    node_memory_mb: float = 0.0
    # Each user's pacing period, the node-bound scenario's (0: closed loop, no think time).
    think_s: float = 0.0

    @property
    def shape(self) -> tuple[int, int, float, float, float]:
        """What cells must share to be compared: all but the system and the request count."""
        return (self.nodes, self.users, self.node_cores, self.node_memory_mb, self.think_s)

    @property
    def label(self) -> str:
        label = f"{self.scenario}-{self.system}-n{self.nodes}-u{self.users}"
        label += f"-c{self.node_cores:g}" if self.node_cores else ""
        return label + (f"-t{self.think_s:g}" if self.think_s else "")

    @property
    def offered_rps(self) -> float | None:
        """The request rate the paced users offer; None for closed-loop users."""
        return offered_rps(self.users, self.think_s)

    @property
    def pacing_text(self) -> str:
        """'a task every 5 s per user: 120 req/s offered' for paced users, '' for the others."""
        offered = self.offered_rps
        if offered is None:
            return ""
        return f"a task every {self.think_s:g} s per user: {offered:.0f} req/s offered"

    @property
    def allotment_text(self) -> str:
        """'0.1 core, 1024 MB' for a confined cell, '' for the others."""
        if not self.node_cores:
            return ""
        memory = f", {self.node_memory_mb:g} MB" if self.node_memory_mb else ""
        return f"{self.node_cores:g} core{memory}"


@dataclass
class CellResult:
    cell: Cell
    finished: bool  # the fixed request count was reached before the time limit
    requests_done: int
    duration_s: float  # from the first counted request to the last: the thesis's measure
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: int
    restarts: int
    setup_requests: int
    setup_failures: int
    node_cpu_mean: float  # percent of one core, mean over nodes and samples
    node_cpu_max: float
    node_rss_max_mb: float
    failure_reasons: dict[str, int] = field(default_factory=dict)
    deferred: int = 0  # counted requests answered 202 and polled to their result
    accounts_created: int = 0  # by the users' set-up
    accounts_reused: int = 0  # taken from the group's account pool instead
    # CPU milliseconds per counted request, by process kind (loadtests.cpu) and in total.
    cpu_ms: dict[str, float] = field(default_factory=dict)
    # The p99 of the requests the node choice serves (the mix less PLATFORM_QUEUED).
    p99_node_served_ms: float = float("nan")
    # Counted requests still under way when the N-th ended: in none of the figures above.
    left_in_flight: int = 0
    oldest_left_s: float = 0.0  # how long the oldest of them had been under way then
    # The p99 with each of those counted at its age then: a lower bound of the p99 had the
    # cell waited for them, which a system that holds requests past the end cannot hide from.
    p99_with_left_ms: float = float("nan")

    def row(self) -> dict[str, Any]:
        skipped = ("cell", "cpu_ms")
        row = {k: v for k, v in dataclasses.asdict(self).items() if k not in skipped}
        row["failure_reasons"] = "; ".join(f"{k}: {v}" for k, v in self.failure_reasons.items())
        row.update({f"cpu_ms_{kind}": self.cpu_ms.get(kind, "") for kind in CPU_COLUMNS})
        cell = dataclasses.asdict(self.cell)
        # The allotment and the pacing last: older columns keep their place.
        last = {name: cell.pop(name) for name in ("node_cores", "node_memory_mb", "think_s")}
        return {**cell, **row, **last}


CPU_COLUMNS: tuple[str, ...] = (*CPU_KINDS, "total")


def counted_samples(cell: Cell, summary: dict[str, Any]) -> list[Any]:
    """The counted requests (end time, name, latency ms, ok, reason), by end time. Requests
    still in flight when the count was reached finish too: only the first `requests` to
    finish count, as in "the time to finish N requests"."""
    return sorted(summary.get("samples", []), key=lambda s: s[0])[: cell.requests]


def counted_window(samples: Sequence[Any]) -> tuple[float, float] | None:
    """Wall-clock start of the first counted request and end of the last: the time to
    finish, and the window the cell's CPU is measured over (the users' set-up is before)."""
    if not samples:
        return None
    return min(s[0] - s[2] / 1000 for s in samples), max(s[0] for s in samples)


def cell_result(
    cell: Cell,
    summary: dict[str, Any],
    resources: Sequence[ResourceSample],
    restarts: int,
    cpu_seconds: Mapping[str, float] | None = None,
) -> CellResult:
    """The figures of one cell from the locustfile's summary (end time, name,
    latency ms, ok, reason per counted request) and the resource samples."""
    samples = counted_samples(cell, summary)
    latencies = np.array([s[2] for s in samples], dtype=float)
    failed = [s for s in samples if not s[3]]
    window = counted_window(samples)
    duration = window[1] - window[0] if window else 0.0
    p50, p95, p99 = (
        (float(np.percentile(latencies, q)) for q in (50, 95, 99))
        if latencies.size
        else (float("nan"),) * 3
    )
    left_ages_s = [float(age) for age in summary.get("left_ages_s", [])]
    with_left = [*latencies, *(age * 1000 for age in left_ages_s)]
    p99_with_left = float(np.percentile(with_left, 99)) if with_left else float("nan")
    node_served = [s[2] for s in samples if s[1] not in PLATFORM_QUEUED]
    p99_node_served = float(np.percentile(node_served, 99)) if node_served else float("nan")
    nodes = [r for r in resources if r.kind == "node"]
    cpu = np.array([r.cpu_percent for r in nodes], dtype=float)
    rss = np.array([r.rss_mb for r in nodes], dtype=float)
    reasons = Counter(f"{s[1]} {s[4]}" for s in failed)
    return CellResult(
        cell=cell,
        finished=len(samples) >= cell.requests,
        requests_done=len(samples),
        duration_s=round(duration, 3),
        throughput_rps=round(len(samples) / duration, 2) if duration > 0 else 0.0,
        p50_ms=round(p50, 1),
        p95_ms=round(p95, 1),
        p99_ms=round(p99, 1),
        p99_node_served_ms=round(p99_node_served, 1),
        failures=len(failed),
        restarts=restarts,
        setup_requests=int(summary.get("setup_requests", 0)),
        setup_failures=int(summary.get("setup_failures", 0)),
        deferred=int(summary.get("deferred", 0)),
        left_in_flight=len(left_ages_s),
        oldest_left_s=max(left_ages_s, default=0.0),
        p99_with_left_ms=round(p99_with_left, 1),
        accounts_created=int(summary.get("accounts_created", 0)),
        accounts_reused=int(summary.get("accounts_reused", 0)),
        node_cpu_mean=round(float(cpu.mean()), 1) if cpu.size else 0.0,
        node_cpu_max=round(float(cpu.max()), 1) if cpu.size else 0.0,
        node_rss_max_mb=round(float(rss.max()), 1) if rss.size else 0.0,
        failure_reasons=dict(reasons.most_common(5)),
        cpu_ms=ms_per_request(cpu_seconds or {}, len(samples)) if cpu_seconds else {},
    )


# -- files -------------------------------------------------------------------------


def write_cells_csv(path: Path, results: Sequence[CellResult]) -> None:
    rows = [r.row() for r in results]
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_cells_csv(path: Path) -> list[CellResult]:
    """The results write_cells_csv wrote (a missing file has none); a column an older
    run did not write takes its default."""
    return [_result_of(row) for row in _csv_rows(path)]


def _result_of(row: dict[str, str]) -> CellResult:
    cell = Cell(**_typed(Cell, row))
    values = _typed(CellResult, row)
    values["failure_reasons"] = _reasons_of(row.get("failure_reasons", ""))
    values["cpu_ms"] = {
        kind: float(row[f"cpu_ms_{kind}"]) for kind in CPU_COLUMNS if row.get(f"cpu_ms_{kind}")
    }
    return CellResult(cell=cell, **values)


def _typed(kind: type[Any], row: dict[str, str]) -> dict[str, Any]:
    """The fields of a dataclass found in a CSV row, back to their types (the
    annotations are strings under `from __future__ import annotations`)."""
    parse: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": _bool}
    return {
        f.name: parse[str(f.type)](row[f.name])
        for f in dataclasses.fields(kind)
        if f.name in row and str(f.type) in parse
    }


def _bool(text: str) -> bool:
    return text == "True"


def _reasons_of(text: str) -> dict[str, int]:
    """'name reason: 3; other: 1' back to a dict; a part without a count belongs to the
    reason before it (a reason may hold '; ')."""
    reasons: dict[str, int] = {}
    pending = ""
    for part in text.split("; ") if text else []:
        reason, _, count = (pending + part).rpartition(": ")
        if reason and count.isdigit():
            reasons[reason] = int(count)
            pending = ""
        else:
            pending += part + "; "
    return reasons


def read_resources_csv(path: Path) -> dict[str, list[ResourceSample]]:
    """What write_resources_csv wrote, by cell label (a missing file has none)."""
    by_cell: dict[str, list[ResourceSample]] = {}
    for row in _csv_rows(path):
        sample = ResourceSample(
            float(row["at_s"]), row["series"], row["kind"], float(row["cpu_percent"]),
            float(row["rss_mb"]),
        )  # fmt: skip
        by_cell.setdefault(row["cell"], []).append(sample)
    return by_cell


def read_zones_csv(path: Path) -> dict[str, list[ZoneSample]]:
    """What write_zones_csv wrote, by cell label (a missing file has none)."""
    by_cell: dict[str, list[ZoneSample]] = {}
    for row in _csv_rows(path):
        sample = ZoneSample(
            float(row["at_s"]), row["node"], row["zone"], float(row["distance"]),
            float(row["cpu_ratio"]), row["lifecycle"], float(row["lbh"]),
        )  # fmt: skip
        by_cell.setdefault(row["cell"], []).append(sample)
    return by_cell


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as source:
            return list(csv.DictReader(source))
    except FileNotFoundError:
        return []


def write_resources_csv(path: Path, by_cell: Mapping[str, Sequence[ResourceSample]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["cell", "at_s", "series", "kind", "cpu_percent", "rss_mb"])
        for label, samples in by_cell.items():
            for s in samples:
                writer.writerow([label, s.at, s.series, s.kind, s.cpu_percent, round(s.rss_mb, 1)])


def write_zones_csv(path: Path, by_cell: Mapping[str, Sequence[ZoneSample]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["cell", "at_s", "node", "zone", "distance", "cpu_ratio", "lifecycle", "lbh"]
        )
        for label, samples in by_cell.items():
            for z in samples:
                writer.writerow([label, z.at, z.node, z.zone, round(z.distance, 4),
                                 round(z.cpu_ratio, 4), z.lifecycle, round(z.lbh, 4)])  # fmt: skip


def zone_shares(samples: Sequence[ZoneSample], node: str) -> str:
    """How the manager saw one node over a cell, e.g. 'I 10%, II 30%, III 60%'."""
    zones = Counter(z.zone for z in samples if z.node == node)
    total = sum(zones.values())
    if not total:
        return "no manager samples"
    return ", ".join(f"{zone} {count / total:.0%}" for zone, count in sorted(zones.items()))


MD_COLUMNS = (
    ("scenario", "scenario"),
    ("system", "system"),
    ("nodes", "nodes"),
    ("users", "users"),
    ("requests_done", "requests"),
    ("duration_s", "time to finish s"),
    ("throughput_rps", "req/s"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("failures", "failures"),
    ("deferred", "deferred (202, polled)"),
    ("left_in_flight", "left in flight"),
    ("oldest_left_s", "oldest left s"),
    ("p99_with_left_ms", "p99 ms, left counted at their age"),
    ("accounts_created", "accounts created"),
    ("accounts_reused", "accounts reused"),
    ("setup_failures", "set-up failures"),
    ("restarts", "restarts"),
    ("node_cpu_mean", "node CPU % mean"),
    ("node_rss_max_mb", "node RSS max MB"),
)


def markdown_table(results: Sequence[CellResult]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in MD_COLUMNS) + " |",
        "|" + "---|" * len(MD_COLUMNS),
    ]
    requests_column = [key for key, _ in MD_COLUMNS].index("requests_done")
    for result in results:
        row = result.row()
        # The scenario names what every node was given and how the users were paced.
        given = "; ".join(t for t in (result.cell.allotment_text, result.cell.pacing_text) if t)
        if given:
            row["scenario"] += f" ({given})"
        cells = [str(row[key]) for key, _ in MD_COLUMNS]
        if not result.finished:
            cells[requests_column] += f" of {result.cell.requests} (unfinished)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(results: Sequence[CellResult]) -> str:
    """CPU ms per counted request by kind, and each cell's total against the monolith's
    at the same users (the cost of the pipeline, side by side in one run)."""
    monolith = {r.cell.users: r.cpu_ms.get("total", 0.0) for r in results
                if r.cell.system == "monolith" and r.cpu_ms}  # fmt: skip
    lines = [
        "| cell | " + " | ".join(CPU_COLUMNS) + " | total / monolith's |",
        "|" + "---|" * (len(CPU_COLUMNS) + 2),
    ]
    for result in results:
        if not result.cpu_ms:
            continue
        total, base = result.cpu_ms.get("total", 0.0), monolith.get(result.cell.users)
        ratio = f"{total / base:.2f}" if base else "-"
        figures = " | ".join(f"{result.cpu_ms.get(kind, 0.0):.2f}" for kind in CPU_COLUMNS)
        lines.append(f"| {result.cell.label} | {figures} | {ratio} |")
    return "\n".join(lines)


def time_ratio_table(results: Sequence[CellResult], scenario: str) -> str:
    """Each ethgw cell's time to finish against the monolith's at the same users, allotment
    and pacing, in one scenario (the node-bound target is read off this table)."""
    monolith = {
        (r.cell.users, r.cell.node_cores, r.cell.think_s): r for r in results
        if r.cell.scenario == scenario and r.cell.system == "monolith" and r.finished
    }  # fmt: skip
    lines = [
        "| system | nodes | users | time to finish s | monolith's s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        cell = result.cell
        if cell.scenario != scenario or cell.system == "monolith":
            continue
        base = monolith.get((cell.users, cell.node_cores, cell.think_s))
        ratio = f"{result.duration_s / base.duration_s:.2f}" if base and result.finished else "-"
        time = f"{result.duration_s:.1f}" if result.finished else "unfinished"
        base_time = f"{base.duration_s:.1f}" if base else "-"
        lines.append(
            f"| {cell.system} | {cell.nodes} | {cell.users} | {time} | {base_time} | {ratio} |"
        )
    return "\n".join(lines)


BASELINES = ("round_robin", "least_inflight", "p2c")

P99S = {
    "p99_ms": "p99 ms",
    "p99_node_served_ms": "p99 ms, node-served requests",
    "p99_with_left_ms": "p99 ms, left in flight counted",
}
"""The p99s the baseline table sets against the baselines', with their titles."""


def baseline_p99_table(results: Sequence[CellResult], scenario: str) -> str:
    """Each strategy's p99s in one scenario against round robin's and against the best
    baseline's at the same nodes, users, allotment and pacing (issues #16 and #20 read their
    slowed-node and node-bound targets off this table)."""
    cells = [
        r
        for r in results
        if r.cell.scenario == scenario and r.cell.system != "monolith" and r.finished
    ]
    titles = [f"{title} | / round_robin's | / best baseline's" for title in P99S.values()]
    lines = [
        "| system | nodes | users | " + " | ".join(titles) + " |",
        "|---|---|---|" + "---|---|---|" * len(P99S),
    ]
    for result in cells:
        peers = [r for r in cells if r.cell.shape == result.cell.shape]
        figures = []
        for figure in P99S:
            own = getattr(result, figure)
            baselines = {
                r.cell.system: getattr(r, figure) for r in peers if r.cell.system in BASELINES
            }
            best = min(baselines.values(), default=float("nan"))
            figures += [f"{own:.0f}", _ratio(own, baselines.get("round_robin")), _ratio(own, best)]
        cell = result.cell
        lines.append(
            f"| {cell.system} | {cell.nodes} | {cell.users} | " + " | ".join(figures) + " |"
        )
    return "\n".join(lines)


def _ratio(value: float, base: float | None) -> str:
    if base is None or not math.isfinite(base) or base <= 0 or not math.isfinite(value):
        return "-"
    return f"{value / base:.2f}"


def write_summary(
    path: Path, results: Sequence[CellResult], header: str, charts: list[str]
) -> None:
    failures = [r for r in results if r.failure_reasons]
    parts = [header, "", markdown_table(results), ""]
    if any(r.cell.scenario == "node-bound" and r.cell.system != "monolith" for r in results):
        parts += ["## Node-bound: time to finish against the monolith's", ""]
        parts += [time_ratio_table(results, "node-bound"), ""]
    if any(r.cell.scenario == "node-bound" and r.cell.system in BASELINES for r in results):
        parts += ["## Node-bound: p99 against the baselines", ""]
        parts += [baseline_p99_table(results, "node-bound"), ""]
    if any(r.cell.scenario == "slow-node" for r in results):
        parts += ["## Slowed node: p99 against the baselines", ""]
        parts += [baseline_p99_table(results, "slow-node"), ""]
    if any(r.cpu_ms for r in results):
        parts += ["## CPU per counted request (ms), by process kind", "", cpu_table(results), ""]
    if failures:
        parts += ["## Failure reasons (top 5 per cell)", ""]
        parts += [f"- {r.cell.label}: {r.row()['failure_reasons']}" for r in failures]
        parts.append("")
    parts += [f"![{Path(c).stem}]({Path(c).name})" for c in charts]
    path.write_text("\n".join(parts) + "\n")


# -- charts --------------------------------------------------------------------------


def plot_matrix(
    directory: Path, results: Sequence[CellResult], scenario: str = "uniform"
) -> list[Path]:
    """Time to finish, throughput and p99 against users: a panel per node count,
    a line per system (the monolith, one node, is drawn in every panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uniform = [r for r in results if r.cell.scenario == scenario]
    if not uniform:
        return []
    node_counts = sorted({r.cell.nodes for r in uniform if r.cell.system != "monolith"}) or [1]
    systems = sorted({r.cell.system for r in uniform}, key=lambda s: (s != "monolith", s))
    # A line per system and allotment: --find-allotment runs one system at several.
    cores = sorted({r.cell.node_cores for r in uniform})
    written = []
    for metric, title in (
        ("duration_s", "time to finish the fixed request count (s)"),
        ("throughput_rps", "throughput (req/s)"),
        ("p99_ms", "p99 latency (ms)"),
    ):
        fig, axes = plt.subplots(1, len(node_counts), figsize=(4.2 * len(node_counts), 3.4),
                                 squeeze=False, sharey=True)  # fmt: skip
        for ax, nodes in zip(axes[0], node_counts, strict=True):
            for system, system_cores in ((s, c) for s in systems for c in cores):
                points = sorted(
                    (r.cell.users, getattr(r, metric))
                    for r in uniform
                    if r.cell.system == system
                    and r.cell.node_cores == system_cores
                    and (system == "monolith" or r.cell.nodes == nodes)
                )
                if points:
                    xs, ys = zip(*points, strict=True)
                    style = "k--" if system == "monolith" and len(cores) == 1 else "-"
                    label = system + (f" {system_cores:g} core" if len(cores) > 1 else "")
                    ax.plot(xs, ys, style, marker="o", label=label)
            allotted = {r.cell.allotment_text for r in uniform} - {""}
            # One allotment: named here; several: each line's label names its own.
            suffix = f", each node {allotted.pop()}" if len(allotted) == 1 else ""
            shown = f"ethgw with {nodes} nodes" if len(systems) > 1 else systems[0]
            ax.set_title(shown + suffix, fontsize=9)
            ax.set_xlabel("concurrent users")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(title)
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        prefix = "matrix" if scenario == "uniform" else f"matrix-{scenario}"
        path = directory / f"{prefix}-{metric}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def plot_slow_node(directory: Path, results: Sequence[CellResult]) -> list[Path]:
    """p50, p95 and p99 per strategy in the heterogeneous scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slowed = [r for r in results if r.cell.scenario == "slow-node"]
    if not slowed:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    width = 0.8 / len(slowed)
    for i, r in enumerate(slowed):
        xs = np.arange(3) + i * width
        ax.bar(xs, [r.p50_ms, r.p95_ms, r.p99_ms], width, label=f"{r.cell.system} u={r.cell.users}")
    ax.set_xticks(np.arange(3) + width * (len(slowed) - 1) / 2, ["p50", "p95", "p99"])
    ax.set_ylabel("latency (ms)")
    ax.set_title("one node under a CPU cap")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path = directory / "slow-node-latency.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


def plot_distance(
    directory: Path, by_cell: Mapping[str, Sequence[ZoneSample]], node: str
) -> list[Path]:
    """The slowed node's distance d over each slow-node cell, with the zone bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {label: z for label, z in by_cell.items() if label.startswith("slow-node") and z}
    if not cells:
        return []
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, samples in cells.items():
        points = [z for z in samples if z.node == node]
        ax.plot([z.at for z in points], [z.distance for z in points], label=label, lw=1)
    from ethgw_wire.settings import DEFAULT_DIS_AVEMAX, DEFAULT_DIS_AVEMIN

    dis_ave = (DEFAULT_DIS_AVEMIN + DEFAULT_DIS_AVEMAX) / 2
    ax.axhline(dis_ave, color="grey", ls="--", lw=0.8, label=f"Dis_ave {dis_ave:.2f} (I | II)")
    ax.axhline(DEFAULT_DIS_AVEMAX, color="red", ls=":", lw=0.8, label="Dis_avemax (II | III)")
    ax.set_xlabel("s")
    ax.set_ylabel(f"d of {node} (manager's view)")
    ax.set_title(f"{node} under a CPU cap: its distance from the origin", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = directory / "slow-node-distance.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


def plot_resources(directory: Path, label: str, samples: Sequence[ResourceSample]) -> Path:
    """Node CPU and memory over one cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, mem_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    for series in sorted({s.series for s in samples if s.kind == "node"}):
        points = [s for s in samples if s.series == series]
        cpu_ax.plot([p.at for p in points], [p.cpu_percent for p in points], label=series)
        mem_ax.plot([p.at for p in points], [p.rss_mb for p in points], label=series)
    cpu_ax.set_title(f"node CPU (% of a core), {label}", fontsize=9)
    mem_ax.set_title("node memory (RSS MB)", fontsize=9)
    for ax in (cpu_ax, mem_ax):
        ax.set_xlabel("s")
        ax.grid(alpha=0.3)
    cpu_ax.legend(fontsize=7)
    fig.tight_layout()
    path = directory / f"resources-{label}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
