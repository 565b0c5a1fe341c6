"""`ethgw bench` (`make bench`): the thesis's experiment, the strategies compared.

For each system (the monolith baseline; ethgw with each strategy) and node count,
the system is started once on ports and a state folder of its own; then, for each
user count, Locust runs the table 5.1 mix until a fixed number of requests is done,
while the nodes' CPU and memory are sampled. A heterogeneous scenario repeats a cell
with node-1 under a CPU cap; the node-bound scenario repeats the matrix with every
node (the monolith's included) confined to one allotment, as one container per host.
Results go to results/<time>/: cells.csv, resources.csv, summary.md and PNG charts,
with every process's log, and each ethgw service's counters after each cell, under logs/.

    ethgw bench --quick          # a small matrix: six system starts
    ethgw bench                  # the full matrix (hours on a 2-core machine)
    ethgw bench --systems monolith,lbh --nodes 3 --users 200,600 --requests 3000
    ethgw bench --out results/bench-X --resume   # go on: skip the cells finished there
    ethgw bench --find-allotment 0.05,0.1,0.2    # the monolith's saturation per allotment
    ethgw bench --find-allotment 0.15 --think-s 4  # the same, users paced at a task every 4 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from balancer import STRATEGY_NAMES
from devstack.interrupt import exit_status, run_stoppable
from geth_cluster.cgroups import Allotment
from loadtests.allotment import FIND_USERS, allotment_report
from loadtests.interference import CgroupCpuCap, slow_down
from loadtests.metrics_snapshot import save_metrics
from loadtests.report import (
    Cell,
    CellResult,
    cell_result,
    counted_samples,
    counted_window,
    plot_distance,
    plot_matrix,
    plot_resources,
    plot_slow_node,
    read_cells_csv,
    read_resources_csv,
    read_zones_csv,
    write_cells_csv,
    write_resources_csv,
    write_summary,
    write_zones_csv,
    zone_shares,
)
from loadtests.sampler import ResourceSample, ResourceSampler, ZoneSample
from loadtests.systems import System, ethgw_system, monolith_system
from service_kit.paths import REPO_ROOT

# Every system a cell may run: the monolith, or ethgw with any strategy `ethgw up` accepts.
ALL_SYSTEMS = ("monolith", *STRATEGY_NAMES)
SLOW_NODE = "node-1"
# An idle-to-busy Geth service node here uses 2-10% of a core (the Python pipeline is
# the bottleneck), so the cap must be below that to slow the node's answers at all.
SLOW_NODE_CORES = 0.03
NODE_BOUND = "node-bound"
# The node-bound scenario's allotment of every service node (the monolith's included): chosen
# with `ethgw bench --find-allotment` so that the monolith's one node saturates at about 600
# users of the table 5.1 mix, its users paced (docs/benchmarks.md, "Node-bound: the paced
# search and a first slice of the matrix").
NODE_BOUND_ALLOTMENT = Allotment(cores=0.15, memory_mb=1024.0)
# The node-bound scenario's users start a task every this many seconds each (loadtests/pacing.py),
# so N users offer N / NODE_BOUND_THINK_S requests a second and an allotment can saturate at a
# user count: closed-loop users offer no more load as they grow. Why 5 s: docs/benchmarks.md,
# "Users with think time".
NODE_BOUND_THINK_S = 5.0


@dataclass(frozen=True)
class Profile:
    systems: tuple[str, ...]
    nodes: tuple[int, ...]
    users: tuple[int, ...]
    requests: int
    slow_node_strategies: tuple[str, ...]  # the heterogeneous scenario
    slow_node_users: int
    slow_node_cores: float
    cell_timeout_s: float  # a cell not done by then is reported unfinished
    # The node-bound scenario: these systems at the profile's node counts, every node
    # confined to `allotment` (loadtests.bench.NODE_BOUND_ALLOTMENT unless told).
    node_bound_systems: tuple[str, ...] = ()
    node_bound_users: tuple[int, ...] = ()
    allotment: Allotment = NODE_BOUND_ALLOTMENT
    # The node-bound users' pacing period (0: closed loop, as the other scenarios' users).
    node_bound_think_s: float = NODE_BOUND_THINK_S


FULL = Profile(
    systems=("monolith", "lbh", "round_robin", "least_inflight", "p2c"),
    nodes=(3, 5, 8),
    users=(200, 600, 1000, 1200),
    requests=3000,
    slow_node_strategies=("lbh", "round_robin", "least_inflight", "p2c"),
    slow_node_users=600,
    slow_node_cores=SLOW_NODE_CORES,
    cell_timeout_s=900.0,
    node_bound_systems=("monolith", "lbh", "round_robin", "least_inflight", "p2c"),
    node_bound_users=(200, 600, 1000, 1200),
)
# Each system start costs about a minute here, so the quick profile starts six: the
# monolith and lbh (uniform), lbh and round_robin with the slowed node, and the monolith
# and lbh with every node confined (node-bound).
QUICK = Profile(
    systems=("monolith", "lbh"),
    nodes=(3,),
    users=(30, 100),
    requests=500,
    slow_node_strategies=("lbh", "round_robin"),
    slow_node_users=50,
    slow_node_cores=SLOW_NODE_CORES,
    cell_timeout_s=150.0,
    node_bound_systems=("monolith", "lbh"),
    node_bound_users=(100,),
)


Group = tuple[str, int, str, list[Cell]]  # system, nodes, scenario, its cells


def plan_cells(profile: Profile) -> list[Group]:
    """(system, nodes, scenario, cells) groups: one system start per group."""
    groups: list[Group] = []
    for system in profile.systems:
        for nodes in (1,) if system == "monolith" else profile.nodes:
            # Ascending: each cell reuses the accounts of the ones before and creates
            # only the users it has more (see loadtests/pool.py).
            users = sorted(set(profile.users))
            cells = [Cell(system, nodes, u, profile.requests) for u in users]
            groups.append((system, nodes, "uniform", cells))
    for strategy in profile.slow_node_strategies:
        nodes = min(profile.nodes)
        cell = Cell(strategy, nodes, profile.slow_node_users, profile.requests, "slow-node")
        groups.append((strategy, nodes, "slow-node", [cell]))
    for system in profile.node_bound_systems:
        for nodes in (1,) if system == "monolith" else profile.nodes:
            cells = node_bound_cells(system, nodes, profile.node_bound_users, profile)
            groups.append((system, nodes, NODE_BOUND, cells))
    return groups


def node_bound_cells(
    system: str,
    nodes: int,
    users: Sequence[int],
    profile: Profile,
    allotment: Allotment | None = None,
) -> list[Cell]:
    """A node-bound group's cells, ascending in users, marked with the allotment and the
    users' pacing."""
    allotted = allotment or profile.allotment
    return [
        Cell(system, nodes, u, profile.requests, NODE_BOUND, allotted.cores,
             allotted.memory_mb or 0.0, profile.node_bound_think_s)
        for u in sorted(set(users))
    ]  # fmt: skip


def find_allotment_plan(profile: Profile, cores: Sequence[float]) -> list[Group]:
    """`--find-allotment`: the monolith, node-bound, at each candidate allotment."""
    memory_mb = profile.allotment.memory_mb
    return [
        ("monolith", 1, NODE_BOUND,
         node_bound_cells("monolith", 1, profile.users, profile, Allotment(c, memory_mb)))
        for c in sorted(set(cores))
    ]  # fmt: skip


def allotment_of(cells: Sequence[Cell]) -> Allotment | None:
    """The allotment a group's nodes run confined to (None: not confined)."""
    cell = cells[0]
    if not cell.node_cores:
        return None
    return Allotment(cell.node_cores, cell.node_memory_mb or None)


class Progress:
    """One line per update, so it reads well in a log and in a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {self.done}/{self.total} cells, {elapsed:5.0f}s] {text}", flush=True)


def locust_command(
    system: System, cell: Cell, out: Path, timeout_s: float, pool: Path
) -> list[str]:
    """The Locust command line of one cell: its users, the fixed request count, the group's
    account pool, and the users' think time when the cell paces them."""
    spawn_rate = max(20, cell.users // 10)
    pacing = ["--think-s", str(cell.think_s)] if cell.think_s else []
    return [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(REPO_ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary", "--loglevel", "WARNING",
        "-u", str(cell.users), "-r", str(spawn_rate),
        "--host", system.url,
        "--api-key", system.api_key,
        "--request-count", str(cell.requests),
        "--summary-file", str(_summary_file(out, cell)),
        "--progress-file", str(_progress_file(out, cell)),
        "--account-pool", str(pool),
        "--run-time", f"{int(timeout_s)}s",
        "--stop-timeout", "5",
        *pacing,
    ]  # fmt: skip


async def run_locust(
    system: System, cell: Cell, out: Path, timeout_s: float, progress: Progress, pool: Path
) -> dict[str, object]:
    """Locust headless in its own process; returns the locustfile's summary."""
    summary_file, progress_file = _summary_file(out, cell), _progress_file(out, cell)
    args = locust_command(system, cell, out, timeout_s, pool)
    log = out / "logs" / f"{cell.label}.locust.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=REPO_ROOT, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        try:
            while process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 5.0)
                progress.say(f"{cell.label}: {_progress_text(progress_file, cell)}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if not summary_file.exists():
        raise RuntimeError(f"locust wrote no summary for {cell.label}; see {log}")
    summary: dict[str, object] = json.loads(summary_file.read_text())
    summary_file.unlink()  # the figures go to cells.csv; the raw samples are large
    progress_file.unlink(missing_ok=True)
    return summary


def _summary_file(out: Path, cell: Cell) -> Path:
    return out / f"{cell.label}.locust.json"


def _progress_file(out: Path, cell: Cell) -> Path:
    return out / f"{cell.label}.progress.json"


def _progress_text(path: Path, cell: Cell) -> str:
    try:
        counts = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return "starting users"
    return (
        f"{counts['done']}/{cell.requests} requests, {counts['failed']} failed "
        f"(set-up of {cell.users} users: {counts.get('reused', 0)} accounts reused, "
        f"{counts.get('created', 0)} created, {counts['setup']} set-up requests)"
    )


@contextlib.asynccontextmanager
async def started(
    system: str,
    nodes: int,
    scenario: str,
    profile: Profile,
    out: Path,
    allotment: Allotment | None = None,
) -> AsyncIterator[System]:
    """The system of a group, on a state folder shared by the groups of one shape (a
    confined shape has its own: its calibration is another)."""
    logs = out / "logs"
    confined = f"-c{allotment.cores:g}" if allotment else ""
    if system == "monolith":
        state = out / f"state-monolith{confined}"
        async with monolith_system(state, logs, allotment=allotment) as running:
            yield running
        return
    cores = {SLOW_NODE: profile.slow_node_cores} if scenario == "slow-node" else None
    state = out / f"state-ethgw-n{nodes}{confined}"
    async with ethgw_system(state, logs, nodes, system, cores, allotment=allotment) as running:
        yield running


async def run_group(
    system: str,
    nodes: int,
    scenario: str,
    cells: Sequence[Cell],
    profile: Profile,
    out: Path,
    progress: Progress,
    resources: dict[str, list[ResourceSample]],
    zones: dict[str, list[ZoneSample]],
) -> list[CellResult]:
    allotment = allotment_of(cells)
    confined = f", every node confined to {allotment.describe()}" if allotment else ""
    confined += f"; users {how_paced(cells[0].think_s)}" if cells[0].think_s else ""
    progress.say(f"starting {system} with {nodes} node(s), scenario {scenario}{confined}")
    pool = fresh_pool(
        out, system, nodes, scenario + (f"-c{allotment.cores:g}" if allotment else "")
    )
    results = []
    async with started(system, nodes, scenario, profile, out, allotment) as running:
        for cell in cells:
            slowdown = (
                slow_down(profile.slow_node_cores, f"ethgw-bench-{SLOW_NODE}")
                if scenario == "slow-node"
                else None
            )
            if slowdown is not None:
                progress.say(f"{SLOW_NODE}: {slowdown.description}")
            sampler = ResourceSampler(running, SLOW_NODE if slowdown else None, slowdown)
            stop = asyncio.Event()
            sampling = asyncio.create_task(sampler.run(stop))
            try:
                summary = await run_locust(
                    running, cell, out, profile.cell_timeout_s, progress, pool
                )
            finally:
                stop.set()
                await sampling
                if slowdown is not None:
                    if isinstance(slowdown, CgroupCpuCap):
                        periods = slowdown.throttled_periods()
                        progress.say(f"{SLOW_NODE}: throttled in {periods} periods of 100 ms")
                    slowdown.close()
            await save_metrics(running.metrics_urls, out / "logs", cell.label)
            window = counted_window(counted_samples(cell, summary))
            cpu = sampler.cpu.seconds_between(*window) if window else None
            result = cell_result(cell, summary, sampler.samples, sampler.restarts, cpu)
            resources[cell.label] = sampler.samples
            zones[cell.label] = sampler.zones
            results.append(result)
            progress.done += 1
            progress.say(
                f"{cell.label}: {result.duration_s:.1f}s for {result.requests_done} requests, "
                f"{result.throughput_rps:.0f} req/s, p50 {result.p50_ms:.0f} ms, "
                f"p99 {result.p99_ms:.0f} ms, {result.failures} failed, "
                f"{result.restarts} restarts, CPU {result.cpu_ms.get('total', 0):.1f} ms/request; "
                f"set-up: {result.accounts_reused} accounts reused, "
                f"{result.accounts_created} created, {result.setup_requests} requests"
                + (
                    f"; {SLOW_NODE} zones: {zone_shares(sampler.zones, SLOW_NODE)}"
                    if slowdown
                    else ""
                )
            )
    return results


def fresh_pool(out: Path, system: str, nodes: int, scenario: str) -> Path:
    """The group's account pool, emptied: it serves one start of the system only (the
    unlocks are in its processes' memory, and a finished run deletes its chains)."""
    pool = out / "pools" / f"{scenario}-{system}-n{nodes}.jsonl"
    pool.parent.mkdir(parents=True, exist_ok=True)
    pool.unlink(missing_ok=True)
    return pool


def groups_to_run(groups: Sequence[Group], finished: Collection[Cell]) -> list[Group]:
    """The plan without the cells already finished; a group left with none is not started."""
    remaining = []
    for system, nodes, scenario, cells in groups:
        todo = [cell for cell in cells if cell not in finished]
        if todo:
            remaining.append((system, nodes, scenario, todo))
    return remaining


def merged(earlier: Sequence[CellResult], new: Sequence[CellResult]) -> list[CellResult]:
    """Every row: an earlier one replaced in place by a new run of its cell, others kept,
    the new cells after them."""
    rerun = {r.cell: r for r in new}
    rows = [rerun.get(r.cell, r) for r in earlier]
    seen = {r.cell for r in earlier}
    return rows + [r for r in new if r.cell not in seen]


def machine_text() -> str:
    import platform

    import psutil

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"commit {checkout_text(REPO_ROOT)}; "
        f"{platform.node()}: {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"load average at the start {load}"
    )


def write_outputs(
    out: Path,
    results: list[CellResult],
    resources: dict[str, list[ResourceSample]],
    zones: dict[str, list[ZoneSample]],
    profile_name: str,
    started_at: str,
    machine: str,
) -> None:
    write_cells_csv(out / "cells.csv", results)
    write_resources_csv(out / "resources.csv", resources)
    write_zones_csv(out / "zones.csv", zones)
    charts = plot_matrix(out, results) + plot_matrix(out, results, NODE_BOUND)
    charts += plot_slow_node(out, results)
    charts += plot_distance(out, zones, SLOW_NODE)
    if not results:
        return
    busiest = max(results, key=lambda r: r.cell.users)
    if busiest.cell.label in resources:
        charts.append(plot_resources(out, busiest.cell.label, resources[busiest.cell.label]))
    slowed = [
        f"- {r.cell.label}: {SLOW_NODE} in zones "
        f"{zone_shares(zones.get(r.cell.label, []), SLOW_NODE)}"
        for r in results
        if r.cell.scenario == "slow-node"
    ]
    allotments = sorted({r.cell.allotment_text for r in results} - {""})
    pacings = sorted({r.cell.think_s for r in results if r.cell.scenario == NODE_BOUND})
    confined = (
        f"\nNode-bound cells: every service node (the monolith's included) confined to "
        f"{' / '.join(allotments)} ({_confinement_text()}); their users "
        f"{' / '.join(how_paced(t) for t in pacings)}.\n"
        if allotments
        else ""
    )
    header = (
        f"# ethgw bench, profile {profile_name}, started {started_at}\n\n"
        f"Machine: {machine}.\n"
        + confined
        + ("\nThe manager's view of the slowed node (share of 1 s samples):\n\n" if slowed else "")
        + "\n".join(slowed)
    )
    write_summary(out / "summary.md", results, header, [str(c) for c in charts])


def how_paced(think_s: float) -> str:
    """How a cell's users were paced, for a report's header."""
    if not think_s:
        return "closed loop (the next task as soon as an answer is back)"
    return f"paced, a task every {think_s:g} s each (N users offer N/{think_s:g} req/s)"


def _confinement_text() -> str:
    from ethgw_wire.settings import ClusterSettings

    if ClusterSettings().runtime == "docker":
        return "docker runtime: each container's --cpus and --memory"
    return "process runtime: a cgroup per node with a CPU quota and memory limit"


def earlier_results(
    out: Path,
) -> tuple[list[CellResult], dict[str, list[ResourceSample]], dict[str, list[ZoneSample]]]:
    """What `--resume` keeps of the folder: the rows of cells.csv and their samples."""
    return (
        read_cells_csv(out / "cells.csv"),
        read_resources_csv(out / "resources.csv"),
        read_zones_csv(out / "zones.csv"),
    )


async def run_bench(
    profile: Profile,
    profile_name: str,
    out: Path,
    resume: bool = False,
    plan: Sequence[Group] | None = None,
) -> list[CellResult]:
    """Every group of `plan` (the profile's matrix unless told), its outputs in `out`."""
    results, resources, zones = earlier_results(out) if resume else ([], {}, {})
    finished = {r.cell for r in results if r.finished}
    groups = groups_to_run(plan_cells(profile) if plan is None else plan, finished)
    progress = Progress(sum(len(cells) for *_, cells in groups))
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if resume:
        profile_name += f", resumed with {len(results)} earlier rows"
    machine = machine_text()  # now: the load average at the start, as it says
    progress.say(f"results in {out}; machine {machine}")
    if resume:
        progress.say(f"resuming: {len(finished)} finished cells in cells.csv are skipped")

    def write() -> None:  # after every group: an interrupted run keeps what it measured
        write_outputs(out, results, resources, zones, profile_name, started_at, machine)

    try:
        for system, nodes, scenario, cells in groups:
            new = await run_group(
                system, nodes, scenario, cells, profile, out, progress, resources, zones
            )
            results = merged(results, new)
            await asyncio.to_thread(write)
        if not groups:  # all skipped: the charts and summary.md are still made anew
            await asyncio.to_thread(write)
    finally:
        await asyncio.to_thread(_remove_states, out)
    progress.say(f"done: {out / 'summary.md'}")
    return results


async def run_find_allotment(profile: Profile, cores: Sequence[float], out: Path) -> str:
    """The monolith, node-bound, at each candidate allotment; allotment.md says where each
    saturates and which one saturates nearest the target."""
    name = f"find-allotment ({', '.join(f'{c:g}' for c in sorted(set(cores)))} core)"
    machine = machine_text()  # now: the load average at the start, as it says
    results = await run_bench(profile, name, out, plan=find_allotment_plan(profile, cores))
    text = (
        f"# ethgw bench --find-allotment\n\nMachine: {machine}; "
        f"{profile.requests} requests per cell; users {how_paced(profile.node_bound_think_s)}."
        "\n\n" + allotment_report(results)
    )
    await asyncio.to_thread((out / "allotment.md").write_text, text)
    print(text, flush=True)
    return text


async def run_micro(out: Path, reads: int, write_s: float) -> str:
    """Both micro-benchmarks on one ethgw stack (3 nodes, lbh); returns the markdown."""
    from ethgw_wire.settings import ClusterSettings, KafkaSettings
    from loadtests import micro

    capacity = micro.chain_capacity(ClusterSettings())
    print(f"[micro] starting ethgw (3 nodes, lbh); results in {out}", flush=True)
    try:
        async with ethgw_system(out / "state-micro", out / "logs", 3, "lbh") as running:
            rpc_url = running.node_rpc["node-1"]
            print(f"[micro] read latency: {reads} sequential reads per path", flush=True)
            latency = await micro.read_latency(running, rpc_url, reads)
            print(micro.format_latency(latency), flush=True)
            print("[micro] read throughput: 64 concurrent clients, 10 s per path", flush=True)
            throughput = await micro.read_throughput(running, rpc_url)
            print(micro.format_throughput(throughput), flush=True)
            print(f"[micro] where a read's time goes: {reads} tasks, one at a time", flush=True)
            assert running.kafka_port is not None  # ethgw_system always names its broker
            hops = await micro.read_hops(KafkaSettings(port=running.kafka_port), reads)
            print(micro.format_hops(hops), flush=True)
            print(f"[micro] writes through the gateway for {write_s:.0f}s", flush=True)
            rates = [await micro.gateway_writes(running, rpc_url, write_s, 32, capacity)]
            print(f"[micro] writes signed here, straight to node-1, {write_s:.0f}s", flush=True)
            rates.append(await micro.direct_writes(running, rpc_url, write_s, 4000, capacity))
            print(micro.format_writes(rates), flush=True)
    finally:
        await asyncio.to_thread(_remove_states, out)
    text = (
        f"# ethgw micro-benchmarks\n\nMachine: {machine_text()}.\n\n"
        f"## Read latency at low load (one client, sequential)\n\n{micro.format_latency(latency)}"
        f"\n\n## Read throughput and CPU per read (64 concurrent clients)\n\n"
        f"{micro.format_throughput(throughput)}"
        f"\n\n## Where a read's time goes (tasks put on Kafka here, p50 of each hop)\n\n"
        f"{micro.format_hops(hops)}"
        f"\n\n## Sustained mined writes\n\n{micro.format_writes(rates)}\n"
    )
    await asyncio.to_thread((out / "micro.md").write_text, text)
    return text


async def run_micro_against(out: Path, other: Path, rounds: int, reads: int, write_s: float) -> str:
    """The micro-benchmarks of this checkout and `other` side by side: `rounds` rounds,
    each starting a fresh stack of one checkout then of the other, so drift in the
    machine's load falls on both alike. The measuring code is this checkout's."""
    from ethgw_wire.settings import ClusterSettings
    from loadtests import micro

    capacity = micro.chain_capacity(ClusterSettings())
    checkouts = {"this checkout": REPO_ROOT, "the other checkout": other}
    parts = [f"# ethgw micro-benchmarks, two checkouts side by side\n\nMachine: {machine_text()}."]
    for round_ in range(1, rounds + 1):
        for label, root in checkouts.items():
            heading = f"## {label} ({_commit_of(root)}), round {round_}, {_load_text()}"
            print(f"[micro] {heading}", flush=True)
            state = out / f"state-{round_}-{len(parts)}"
            try:
                async with ethgw_system(state, out / "logs", 3, "lbh", checkout=root) as running:
                    rpc_url = running.node_rpc["node-1"]
                    latency = await micro.read_latency(running, rpc_url, reads)
                    throughput = await micro.read_throughput(running, rpc_url)
                    writes = [await micro.gateway_writes(running, rpc_url, write_s, 32, capacity)]
            finally:
                await asyncio.to_thread(shutil.rmtree, state, True)
            tables = (micro.format_latency(latency), micro.format_throughput(throughput),
                      micro.format_writes(writes))  # fmt: skip
            text = "\n\n".join((heading, *tables))
            print(text, flush=True)
            parts.append(text)
    markdown = "\n\n".join(parts) + "\n"
    await asyncio.to_thread((out / "micro-side-by-side.md").write_text, markdown)
    return markdown


def _commit_of(root: Path) -> str:
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout.strip() or "not a git checkout"


def checkout_text(root: Path) -> str:
    """The commit measured, and whether the checkout differed from it: a figure names both."""
    changed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return _commit_of(root) + (" with uncommitted changes" if changed else "")


def _load_text() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _remove_states(out: Path) -> None:
    """The chains and Kafka logs of the run: large, and no figure is in them. The
    services' logs (gateway, providers, read and write instances) are kept in logs/.
    The account pools go too: their accounts are on the chains (cells.csv counts them)."""
    shutil.rmtree(out / "pools", ignore_errors=True)
    for state in out.glob("state-*"):
        for log in (state / "run").glob("*.log"):
            shutil.move(log, out / "logs" / f"{state.name}-{log.name}")
        shutil.rmtree(state, ignore_errors=True)


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _csv_floats(text: str) -> tuple[float, ...]:
    values = tuple(float(x) for x in text.split(",") if x)
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"positive numbers of cores expected, got {text!r}")
    return values


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"0 or a positive number expected, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a positive number expected, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ethgw bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small profile (6 starts)")
    parser.add_argument("--systems", help=f"comma-separated, of {','.join(ALL_SYSTEMS)}")
    parser.add_argument("--nodes", type=_csv_ints, help="node counts, e.g. 3,5,8")
    parser.add_argument("--users", type=_csv_ints, help="user counts, e.g. 200,600")
    parser.add_argument("--requests", type=int, help="the fixed request count of a cell")
    parser.add_argument(
        "--slow-node",
        help=f"strategies of the heterogeneous scenario, of {','.join(STRATEGY_NAMES)} ('' none)",
    )
    parser.add_argument("--slow-node-users", type=int, help="users of the heterogeneous cells")
    parser.add_argument(
        "--slow-node-cores",
        type=_positive,
        help=f"CPU cores of the slowed node in the heterogeneous cells ({SLOW_NODE_CORES:g})",
    )
    parser.add_argument("--cell-timeout", type=float, help="seconds before a cell is unfinished")
    parser.add_argument(
        "--node-bound",
        help=f"systems of the node-bound scenario, of {','.join(ALL_SYSTEMS)} ('' none)",
    )
    parser.add_argument("--node-bound-users", type=_csv_ints, help="users of node-bound cells")
    parser.add_argument(
        "--node-cores",
        type=_positive,
        help=f"node-bound: CPU cores of every node ({NODE_BOUND_ALLOTMENT.cores:g})",
    )
    parser.add_argument(
        "--node-memory-mb",
        type=_positive,
        help=f"node-bound: memory of every node, MB ({NODE_BOUND_ALLOTMENT.memory_mb:g})",
    )
    parser.add_argument(
        "--think-s",
        type=_non_negative,
        help="node-bound and --find-allotment: each user starts a task every THINK_S s, "
        f"so N users offer N/THINK_S req/s ({NODE_BOUND_THINK_S:g}; 0: closed loop)",
    )
    parser.add_argument(
        "--find-allotment",
        type=_csv_floats,
        metavar="CORES,...",
        help="only the monolith, node-bound, at each of these allotments and --users "
        f"(default {','.join(map(str, FIND_USERS))}), its users paced at --think-s: where "
        "its time to finish stops falling, and the allotment that saturates nearest 600 "
        "users (or why none is chosen)",
    )
    parser.add_argument("--micro", action="store_true", help="the two micro-benchmarks only")
    parser.add_argument("--micro-reads", type=int, default=1000, help="reads per path")
    parser.add_argument("--micro-write-s", type=float, default=20.0, help="seconds of writes")
    parser.add_argument(
        "--micro-against",
        type=Path,
        help="with --micro: another checkout (e.g. a git worktree of an older commit), "
        "measured side by side with this one in interleaved rounds",
    )
    parser.add_argument(
        "--micro-rounds", type=int, default=2, help="with --micro-against: rounds (2)"
    )
    parser.add_argument("--out", type=Path, help="results folder (default results/<time>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --out: keep its cells.csv rows and skip the cells finished there",
    )
    return parser


def profile_from(args: argparse.Namespace) -> Profile:
    base = QUICK if args.quick else FULL
    systems = base.systems
    if args.systems is not None:
        systems = tuple(s for s in args.systems.split(",") if s)
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        raise SystemExit(f"ethgw bench: unknown systems {sorted(unknown)}")
    slow = base.slow_node_strategies
    if args.slow_node is not None:
        slow = tuple(s for s in args.slow_node.split(",") if s)
    unknown = set(slow) - set(STRATEGY_NAMES)
    if unknown:
        raise SystemExit(f"ethgw bench: unknown slow-node strategies {sorted(unknown)}")
    node_bound = base.node_bound_systems
    if args.node_bound is not None:
        node_bound = tuple(s for s in args.node_bound.split(",") if s)
    unknown = set(node_bound) - set(ALL_SYSTEMS)
    if unknown:
        raise SystemExit(f"ethgw bench: unknown node-bound systems {sorted(unknown)}")
    allotment = Allotment(
        args.node_cores or base.allotment.cores, args.node_memory_mb or base.allotment.memory_mb
    )
    think_s = base.node_bound_think_s if args.think_s is None else args.think_s
    return Profile(
        systems=systems,
        nodes=args.nodes or base.nodes,
        users=args.users or base.users,
        requests=args.requests or base.requests,
        slow_node_strategies=slow,
        slow_node_users=args.slow_node_users or base.slow_node_users,
        slow_node_cores=args.slow_node_cores or base.slow_node_cores,
        cell_timeout_s=args.cell_timeout or base.cell_timeout_s,
        node_bound_systems=node_bound,
        node_bound_users=args.node_bound_users or base.node_bound_users,
        allotment=allotment,
        node_bound_think_s=think_s,
    )


def _profile_name(args: argparse.Namespace) -> str:
    name = "quick" if args.quick else "full"
    overridden = (
        *(args.systems, args.nodes, args.users, args.requests, args.slow_node),
        *(args.node_bound, args.node_bound_users, args.node_cores, args.node_memory_mb),
        args.think_s,
    )
    return name + (" with overrides" if any(v is not None for v in overridden) else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume and args.out is None:
        parser.error("--resume needs --out: the folder of the run to go on with")
    profile = profile_from(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Absolute: the state folders are handed to processes that run elsewhere (Kafka).
    out = (args.out or REPO_ROOT / "results" / f"bench-{stamp}").resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    try:
        if args.micro and args.micro_against is not None:
            run_stoppable(
                run_micro_against(
                    out,
                    args.micro_against.resolve(),
                    args.micro_rounds,
                    args.micro_reads,
                    args.micro_write_s,
                )
            )
        elif args.micro:
            run_stoppable(run_micro(out, args.micro_reads, args.micro_write_s))
        elif args.find_allotment is not None:
            if args.users is None:
                profile = dataclasses.replace(profile, users=FIND_USERS)
            run_stoppable(run_find_allotment(profile, args.find_allotment, out))
        else:
            run_stoppable(run_bench(profile, _profile_name(args), out, args.resume))
    except KeyboardInterrupt as interrupt:
        print(f"interrupted; partial results in {out}", file=sys.stderr)
        return exit_status(interrupt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
