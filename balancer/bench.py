"""Speed of `plan()`: `python -m balancer.bench [--repeat N] [--quick]`.

Prints the time of one round of 100 nodes x 1,000 tasks (target: under 5 ms) for LBH with and
without the memory constraint and for the baselines, then how the cost scales with the number
of tasks and of nodes, against the model tasks * log2(nodes) + nodes. The rounds are random but
seeded. Each figure is measured `--repeat` times: the best is the code's own cost (other work
on the machine only ever adds time), the median what a busy machine gives.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import timeit
from collections.abc import Sequence

import numpy as np

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
) -> tuple[float, float]:
    """(best, median) seconds of one `plan()` call over `repeat` measurements of >= 20 ms."""
    timer = timeit.Timer(lambda: strategy.plan(nodes, tasks))
    number, _ = timer.autorange()  # enough calls for >= 0.2 s; a tenth of that per measurement
    number = max(1, number // 10)
    per_call = [t / number for t in timer.repeat(repeat=repeat, number=number)]
    return min(per_call), statistics.median(per_call)


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
    lines = [
        "plan() for 100 nodes x 1,000 tasks",
        f"{'strategy':30} {'best ms':>8} {'median ms':>10}",
    ]
    for label, strategy, batch in rows:
        best, median = time_plan(strategy, nodes, batch, repeat)
        lines.append(f"{label:30} {best * 1e3:8.3f} {median * 1e3:10.3f}")
    return lines


Timing = tuple[int, int, float]  # nodes, tasks, best seconds


def scaling(sizes: Sequence[tuple[int, int]], repeat: int) -> list[Timing]:
    """Best time of LBH with the memory constraint for each (nodes, tasks)."""
    timings = []
    for node_count, task_count in sizes:
        nodes, tasks = make_round(node_count, task_count)
        seconds, _ = time_plan(_lbh(True), nodes, tasks, repeat)
        timings.append((node_count, task_count, seconds))
    return timings


def scaling_table(timings: Sequence[Timing]) -> list[str]:
    """Lines of a scaling table."""
    lines = [f"{'nodes':>6} {'tasks':>6} {'best ms':>9} {'us/task':>8} {'ns/(T*log2(N)+N)':>17}"]
    for node_count, task_count, seconds in timings:
        model = task_count * math.log2(node_count) + node_count
        lines.append(
            f"{node_count:6d} {task_count:6d} {seconds * 1e3:9.3f} "
            f"{seconds * 1e6 / task_count:8.2f} {seconds * 1e9 / model:17.1f}"
        )
    return lines


def model_fit(timings: Sequence[Timing]) -> list[str]:
    """Least-squares fit (relative errors) of t = a*T*log2(N) + b*N + c to every timing.

    If this model explains every row, the cost grows no faster than T*log(N) + N; the two
    coefficients differ, which is why the ns/(T*log2(N)+N) column is not flat.
    """
    n = np.array([t[0] for t in timings], dtype=float)
    t = np.array([t[1] for t in timings], dtype=float)
    seconds = np.array([t[2] for t in timings])
    design = np.column_stack([t * np.log2(n), n, np.ones_like(n)])
    # Relative errors: each row weighs the same, whatever its size.
    weight = 1.0 / seconds
    (a, b, c), *_ = np.linalg.lstsq(design * weight[:, None], seconds * weight, rcond=None)
    fitted = design @ np.array([a, b, c])
    lines = [
        f"fit: t = {a * 1e9:.0f} ns * T*log2(N) + {b * 1e9:.0f} ns * N + {c * 1e6:.0f} us",
        f"{'nodes':>6} {'tasks':>6} {'best ms':>9} {'fit ms':>9} {'residual':>9}",
    ]
    for (node_count, task_count, measured), model in zip(timings, fitted.tolist(), strict=True):
        lines.append(
            f"{node_count:6d} {task_count:6d} {measured * 1e3:9.3f} {model * 1e3:9.3f} "
            f"{(measured - model) / measured:9.0%}"
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
    with_tasks, with_nodes = scaling(by_tasks, args.repeat), scaling(by_nodes, args.repeat)
    print("scaling with tasks (LBH, memory constraint)")
    print("\n".join(scaling_table(with_tasks)), end="\n\n")
    print("scaling with nodes (LBH, memory constraint)")
    print("\n".join(scaling_table(with_nodes)), end="\n\n")
    print("\n".join(model_fit([*with_tasks, *with_nodes])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
