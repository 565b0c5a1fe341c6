"""A deliberately naive model of lbh-spec.md sections 3-6, to compare the scheduler against.

Written straight from the spec's sentences, quadratic and slow: every choice rescans every node.
"""

from __future__ import annotations

import math

from balancer import NodeState, Task, TaskClass, Zone

from .generators import Settings

_RANK = {TaskClass.DT: 0, TaskClass.MAT: 1, TaskClass.MCT: 2}


def zone_of(node: NodeState, s: Settings) -> Zone:
    d = math.sqrt(node.memory**2 + node.cpu**2)
    if node.down:
        return Zone.DOWN
    if d <= s.dis_ave:
        return Zone.I
    if d <= s.dis_avemax:
        return Zone.II
    return Zone.III


def lbh_of(nodes: list[NodeState], s: Settings) -> float:
    terms = [s.dis_ave - math.sqrt(n.memory**2 + n.cpu**2) for n in nodes if not n.down]
    return math.fsum(terms)


def order_of(tasks: list[Task]) -> list[int]:
    """Reads oldest first; then repeatedly the best available write by (class, age, position),
    a write being available once every older write of its account is placed."""
    reads = sorted(
        (i for i, t in enumerate(tasks) if t.cls is TaskClass.RT),
        key=lambda i: (tasks[i].enqueued_at, i),
    )
    left = [i for i, t in enumerate(tasks) if t.cls is not TaskClass.RT]
    writes: list[int] = []
    while left:

        def available(i: int) -> bool:
            a = tasks[i].account
            return a is None or not any(
                tasks[j].account == a and (tasks[j].enqueued_at, j) < (tasks[i].enqueued_at, i)
                for j in left
            )

        best = min(
            (i for i in left if available(i)),
            key=lambda i: (_RANK[tasks[i].cls], tasks[i].enqueued_at, i),
        )
        writes.append(best)
        left.remove(best)
    return reads + writes


def fits(node: NodeState, given: float, need: float) -> bool:
    free = node.free_memory_mb
    return free is None or (free - given >= need and given + need <= free)


def reference_plan(
    s: Settings, nodes: list[NodeState], tasks: list[Task]
) -> tuple[list[tuple[str, str]], list[str], bool]:
    """(assignments, held, paused) as the spec describes them."""
    if lbh_of(nodes, s) < 0:
        return [], [t.task_id for t in tasks], True
    zones = {n.node_id: zone_of(n, s) for n in nodes}
    inflight = {n.node_id: n.inflight for n in nodes}
    given = dict.fromkeys(inflight, 0.0)
    blocked: set[str] = set()
    assignments: list[tuple[str, str]] = []
    for i in order_of(tasks):
        task = tasks[i]
        write = task.cls is not TaskClass.RT
        if write and task.account in blocked:
            continue
        need = s.demand(task.cls)
        for zone in (Zone.I, Zone.II) if write else (Zone.II, Zone.I):
            feasible = [
                n for n in nodes if zones[n.node_id] is zone and fits(n, given[n.node_id], need)
            ]
            if feasible:
                best = min(
                    feasible,
                    key=lambda n: (
                        math.sqrt(n.memory**2 + n.cpu**2) + s.delta * inflight[n.node_id],
                        n.node_id,
                    ),
                )
                assignments.append((task.task_id, best.node_id))
                inflight[best.node_id] += 1
                given[best.node_id] += need
                break
        else:
            if write and task.account is not None:
                blocked.add(task.account)
    done = {t for t, _ in assignments}
    return assignments, [t.task_id for t in tasks if t.task_id not in done], False
