"""The LBH state-feedback scheduler (lbh-spec.md sections 3-6 and 9)."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from balancer.calibration import Calibration
from balancer.plan import Plan
from balancer.state import NodeState, Zone, Zoning, distance, zoning
from balancer.tasks import Task, TaskClass, dispatch_order

DEFAULT_DELTA = 0.05
"""Predicted rise of a node's d per task in flight: one task costs about 5% of the plane's
unit, so a batch of ten moves a node by half the width of a typical zone."""

_NO_MEMORY_DEMAND: Mapping[TaskClass, float] = MappingProxyType({})

# A heap entry: (d_hat, node_id, node index, inflight count when pushed). The id breaks ties
# (lowest first, as the spec asks); the count tells a current entry from a stale one.
_Entry = tuple[float, str, int, int]


class LBHScheduler:
    """Places a round's tasks by the nodes' state-plane zones and predicted distance.

    Settings (all validated here, ValueError naming the field):
    dis_avemin, dis_avemax: the calibrated bounds, 0 <= dis_avemin < dis_avemax <= sqrt(2).
    delta: d added per task in flight (default DEFAULT_DELTA = 0.05), finite and >= 0.
    task_memory_mb: memory demand per class in MB (default: none); a missing class needs 0.
        Keys may be TaskClass members or their names ("RT", ...); values finite and >= 0.
    """

    name = "lbh"

    def __init__(
        self,
        dis_avemin: float,
        dis_avemax: float,
        delta: float = DEFAULT_DELTA,
        task_memory_mb: Mapping[TaskClass, float] = _NO_MEMORY_DEMAND,
    ) -> None:
        self._calibration = Calibration(dis_avemin, dis_avemax)
        delta = float(delta)
        if not (math.isfinite(delta) and delta >= 0.0):
            raise ValueError(f"delta must be a finite number >= 0, got {delta}")
        self._delta = delta
        self._demand = _demand_table(task_memory_mb)

    @classmethod
    def from_calibration(
        cls,
        calibration: Calibration,
        delta: float = DEFAULT_DELTA,
        task_memory_mb: Mapping[TaskClass, float] = _NO_MEMORY_DEMAND,
    ) -> LBHScheduler:
        """A scheduler with the bounds of a loaded or measured calibration."""
        return cls(calibration.dis_avemin, calibration.dis_avemax, delta, task_memory_mb)

    @property
    def calibration(self) -> Calibration:
        """The bounds in use; `calibration.dis_ave` is the zone I/II boundary."""
        return self._calibration

    @property
    def delta(self) -> float:
        """d added per task in flight."""
        return self._delta

    @property
    def task_memory_mb(self) -> Mapping[TaskClass, float]:
        """Memory demand per class (a class missing here needs 0 MB)."""
        return MappingProxyType(self._demand)

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        """Place `tasks` on `nodes`; pure: same input, same plan, and the NodeStates are untouched.

        Cost: O(nodes) to read the plane, the two sorts of `dispatch_order` (linear on a queue's
        oldest-first input), then O(log nodes) heap work per task and per memory class.
        """
        ids = check_node_ids(nodes)
        reading = zoning(nodes, self._calibration)
        paused = reading.lbh < 0.0
        assignments = [] if paused else self._assigner(nodes, reading).run(tasks)
        given = {task_index for task_index, _ in assignments}
        return Plan(
            assignments=[(tasks[t].task_id, ids[n]) for t, n in assignments],
            held=[task.task_id for i, task in enumerate(tasks) if i not in given],
            recycle=[ids[i] for i, zone in enumerate(reading.zones) if zone is Zone.III],
            zones=dict(zip(ids, reading.zones, strict=True)),
            lbh=reading.lbh,
            paused=paused,
            distances=dict(zip(ids, reading.distances, strict=True)),
        )

    def _assigner(self, nodes: Sequence[NodeState], reading: Zoning) -> _Assigner:
        return _Assigner(nodes, reading, self._delta, self._demand)


def _demand_table(task_memory_mb: Mapping[TaskClass, float]) -> dict[TaskClass, float]:
    """Validated demand per class, every class present (missing = 0)."""
    table = dict.fromkeys(TaskClass, 0.0)
    for key, value in task_memory_mb.items():
        try:
            cls = TaskClass(key)
        except ValueError:
            raise ValueError(f"task_memory_mb: unknown task class {key!r}") from None
        mb = float(value)
        if not (math.isfinite(mb) and mb >= 0.0):
            raise ValueError(f"task_memory_mb[{cls.value}] must be finite and >= 0, got {mb}")
        table[cls] = mb
    return table


def check_node_ids(nodes: Sequence[NodeState]) -> list[str]:
    """The node ids, refusing duplicates: two states for one node cannot both be true."""
    ids = [node.node_id for node in nodes]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"node id {duplicate!r} appears more than once")
    return ids


class _Assigner:
    """One round's assignment: a min-heap of (d_hat, node id) per zone and distinct demand.

    Each heap holds one entry per node still feasible for its demand. An entry's d_hat may be
    stale, but only ever too low (d_hat grows with every task given), so a current entry on top
    is the true minimum; a stale one on top is refreshed in place. A node infeasible for a
    demand stays so for the rest of the round (what it was given only grows), so it leaves that
    demand's heap for good. Each task costs O(log nodes) per heap touched.
    """

    def __init__(
        self,
        nodes: Sequence[NodeState],
        reading: Zoning,
        delta: float,
        demand: Mapping[TaskClass, float],
    ) -> None:
        self._delta = delta
        self._demand = demand
        self._d = reading.distances
        self._ids = [node.node_id for node in nodes]
        self._inflight = [node.inflight for node in nodes]
        self._free = [node.free_memory_mb for node in nodes]
        self._given = [0.0] * len(nodes)
        self._heaps: dict[tuple[Zone, float], list[_Entry]] = {}
        free, d, ids, inflight = self._free, self._d, self._ids, self._inflight
        for zone in (Zone.I, Zone.II):
            # _entry inlined: this loop is the per-node cost of a round.
            entries = [
                (d[i] + delta * inflight[i], ids[i], i, inflight[i])
                for i, z in enumerate(reading.zones)
                if z is zone
            ]
            for level in set(demand.values()):
                # Nothing is given yet, so fitting is just free >= level.
                heap = [e for e in entries if (f := free[e[2]]) is None or f >= level]
                heapq.heapify(heap)
                self._heaps[zone, level] = heap

    def _entry(self, i: int) -> _Entry:
        count = self._inflight[i]
        return (self._d[i] + self._delta * count, self._ids[i], i, count)

    def _fits(self, i: int, need: float) -> bool:
        """Free memory minus this round's demand covers `need` (eq. 3.11).

        Checked both as free - given >= need and as given + need <= free: in floating point the
        two can differ in the last bit, and the constraint must hold however it is summed.
        """
        free = self._free[i]
        if free is None:
            return True
        given = self._given[i]
        return free - given >= need and given + need <= free

    def run(self, tasks: Sequence[Task]) -> list[tuple[int, int]]:
        """(task index, node index) pairs in dispatch order."""
        out: list[tuple[int, int]] = []
        blocked: set[str] = set()  # accounts with a held write: their later writes wait too
        for t in dispatch_order(tasks):
            task = tasks[t]
            if task.cls is TaskClass.RT:
                node = self._place(task.cls, _READ_ZONES)
            elif task.account in blocked:
                continue
            else:
                node = self._place(task.cls, _WRITE_ZONES)
                if node is None and task.account is not None:
                    blocked.add(task.account)
            if node is not None:
                out.append((t, node))
        return out

    def _place(self, cls: TaskClass, zones: tuple[Zone, Zone]) -> int | None:
        """Give a task of `cls` to the best feasible node of the first zone that has one."""
        need = self._demand[cls]
        inflight = self._inflight
        for zone in zones:
            heap = self._heaps[zone, need]
            while heap:
                i, count = heap[0][2], heap[0][3]
                if count != inflight[i]:
                    heapq.heapreplace(heap, self._entry(i))  # stale: refresh, look again
                elif not self._fits(i, need):
                    heapq.heappop(heap)  # infeasible for this demand from now on
                else:
                    inflight[i] += 1
                    self._given[i] += need
                    heapq.heapreplace(heap, self._entry(i))
                    return i
        return None


# Candidate zones in order of preference (section 6).
_WRITE_ZONES = (Zone.I, Zone.II)
_READ_ZONES = (Zone.II, Zone.I)


def forced_reads(nodes: Sequence[NodeState], tasks: Sequence[Task]) -> list[tuple[str, str]]:
    """The pause's safety valve (section 4): every read, oldest first, to the routable node of
    smallest d (ties: lowest id). Writes stay held. Empty if no node is routable.

    plan() never applies this; the caller, which knows how long the pause has lasted (the spec's
    max_pause, default 5 s), does, and counts each pair it returns as a forced dispatch.
    """
    routable = [n for n in nodes if not n.down]
    if not routable:
        return []
    best = min(routable, key=lambda n: (distance(n.memory, n.cpu), n.node_id))
    reads = [i for i in dispatch_order(tasks) if tasks[i].cls is TaskClass.RT]
    return [(tasks[i].task_id, best.node_id) for i in reads]
