"""Speed of `plan()`: `python -m balancer.bench [--repeat N] [--quick]`.

Prints the time of one round of 100 nodes x 1,000 tasks (target: under 5 ms) for LBH with and
without the memory constraint and for the baselines, then how the cost scales with the number
of tasks and of nodes, against the model tasks * log2(nodes) + nodes. The rounds are random but
seeded; the figures are medians, since other work on the machine only ever adds time.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import timeit
from collections.abc import Sequence

from balancer.lbh import LBHScheduler
from balancer.plan import Strategy
from balancer.state import NodeState
from balancer.strategies import STRATEGY_NAMES, make_strategy
from balancer.tasks import Task, TaskClass

DIS_AVEMIN, DIS_AVEMAX = 0.2, 1.0
# Thesis table 5.1 by class: reads 55%, create+unlock 10%, send transaction 30%, deploy 5%.
CLASS_MIX = {TaskClass.RT: 0.55, TaskClass.MAT: 0.10, TaskClass.MCT: 0.30, TaskClass.DT: 0.05}
MEMORY_MB = {TaskClass.RT: 1.0, TaskClass.MCT: 4.0, TaskClass.DT: 32.0, TaskClass.MAT: 64.0}


def make_round(
    node_count: int, task_count: int, *, seed: int = 0, shuffled: bool = False
) -> tuple[list[NodeState], list[Task]]:
    """A healthy cluster (LBH >= 0: d mostly below Dis_ave, a few in zone III, a few DOWN),
    with free memory, and a queue of tasks in the table 5.1 mix over 200 accounts, oldest first
    unless `shuffled`."""
    rng = random.Random(seed)
    nodes = []
    for i in range(node_count):
        d = rng.uniform(0.0, 0.9) if rng.random() > 0.05 else rng.uniform(1.0, 1.4)
        angle = rng.uniform(0.0, math.pi / 2)
        nodes.append(
            NodeState(
                node_id=f"node-{i:05d}",
                memory=min(1.0, d * math.cos(angle)),
                cpu=min(1.0, d * math.sin(angle)),
                inflight=rng.randint(0, 8),
                free_memory_mb=rng.uniform(0.0, 400.0),
                down=rng.random() < 0.03,
            )
        )
    classes, weights = list(CLASS_MIX), list(CLASS_MIX.values())
    ages = [i * 0.001 for i in range(task_count)]
    if shuffled:
        rng.shuffle(ages)
    tasks = [
        Task(
            task_id=f"task-{i}",
            cls=(cls := rng.choices(classes, weights)[0]),
            account=None if cls is TaskClass.RT else f"acct-{rng.randrange(200)}",
            enqueued_at=ages[i],
        )
        for i in range(task_count)
    ]
    return nodes, tasks


def time_plan(
    strategy: Strategy, nodes: Sequence[NodeState], tasks: Sequence[Task], repeat: int
) -> float:
    """Median seconds of one `plan()` call over `repeat` measurements of >= 20 ms each."""
    timer = timeit.Timer(lambda: strategy.plan(nodes, tasks))
    number, _ = timer.autorange()  # enough calls for >= 0.2 s; a tenth of that per measurement
    number = max(1, number // 10)
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def _lbh(memory: bool) -> LBHScheduler:
    return LBHScheduler(DIS_AVEMIN, DIS_AVEMAX, task_memory_mb=MEMORY_MB if memory else {})


def headline(repeat: int) -> list[str]:
    """Lines of the 100 x 1,000 table: every strategy, LBH also on unsorted input."""
    nodes, tasks = make_round(100, 1000)
    _, shuffled = make_round(100, 1000, shuffled=True)
    rows: list[tuple[str, Strategy, list[Task]]] = [
        ("lbh, memory constraint", _lbh(True), tasks),
        ("lbh, no memory table", _lbh(False), tasks),
        ("lbh, memory, unsorted queue", _lbh(True), shuffled),
    ]
    for name in STRATEGY_NAMES[1:]:
        rows.append(
            (name, make_strategy(name, dis_avemin=DIS_AVEMIN, dis_avemax=DIS_AVEMAX), tasks)
        )
    lines = ["plan() for 100 nodes x 1,000 tasks (median)", f"{'strategy':30} {'ms':>8}"]
    for label, strategy, batch in rows:
        lines.append(f"{label:30} {time_plan(strategy, nodes, batch, repeat) * 1e3:8.3f}")
    return lines


def scaling(sizes: Sequence[tuple[int, int]], repeat: int) -> list[str]:
    """Lines of the scaling table for LBH with the memory constraint."""
    lines = [
        f"{'nodes':>6} {'tasks':>6} {'ms':>9} {'us/task':>8} {'ns/(T*log2(N)+N)':>17}",
    ]
    for node_count, task_count in sizes:
        nodes, tasks = make_round(node_count, task_count)
        seconds = time_plan(_lbh(True), nodes, tasks, repeat)
        model = task_count * math.log2(node_count) + node_count
        lines.append(
            f"{node_count:6d} {task_count:6d} {seconds * 1e3:9.3f} "
            f"{seconds * 1e6 / task_count:8.2f} {seconds * 1e9 / model:17.1f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the headline figure and the scaling tables."""
    parser = argparse.ArgumentParser(prog="python -m balancer.bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7, help="measurements per figure (7)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        by_tasks, by_nodes = [(10, 50), (10, 100)], [(5, 50), (20, 50)]
    else:
        by_tasks = [(100, t) for t in (250, 500, 1000, 2000, 4000, 8000)]
        by_nodes = [(n, 1000) for n in (10, 100, 1000, 10000)]
    if not args.quick:
        print("\n".join(headline(args.repeat)), end="\n\n")
    print("scaling with tasks (LBH, memory constraint)")
    print("\n".join(scaling(by_tasks, args.repeat)), end="\n\n")
    print("scaling with nodes (LBH, memory constraint)")
    print("\n".join(scaling(by_nodes, args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
