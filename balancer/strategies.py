"""The baseline strategies of lbh-spec.md section 8, and one factory for every strategy.

The baselines answer with the same Plan as LBH so a benchmark compares like with like. What
they share, so that only the choice of node differs from LBH:

- the dispatch order of LBH (reads oldest first, then writes by class, each account's writes in
  order); a baseline never holds a task while some node is routable, so order is kept trivially;
- DOWN nodes are skipped; when every node is DOWN, every task is held;
- zones, distances and LBH are filled in for information, from the same calibration, but the
  baselines ignore zones and the memory constraint and never pause;
- `recycle` lists the zone III nodes only when built with recycle=True (default False), which
  lets a simulation give a baseline the same restart policy as LBH.

Stateful baselines (the round-robin cursor, the random generators) are deterministic for a
given seed and sequence of calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from balancer.adaptive import AdaptiveSettings, LBHAdaptive
from balancer.calibration import Calibration
from balancer.lbh import DEFAULT_DELTA, LBHScheduler, check_node_ids
from balancer.plan import Plan, Strategy
from balancer.state import NodeState, Zone, zoning
from balancer.tasks import Task, TaskClass, dispatch_order

STRATEGY_NAMES = ("lbh", "lbh_adaptive", "round_robin", "random", "least_inflight", "p2c", "single")
"""Every name `make_strategy` accepts."""

DEFAULT_STRATEGY = "lbh"
"""The strategy a stack runs when none is named (docs/balancer.md says why)."""


class _Baseline:
    """Shared frame: zone reading, dispatch order, routable nodes; subclasses choose nodes."""

    name = "baseline"

    def __init__(self, calibration: Calibration, *, recycle: bool = False) -> None:
        self._calibration = calibration
        self._recycle = recycle

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        """Place every task on a routable node (all held if none); never pauses."""
        ids = check_node_ids(nodes)
        reading = zoning(nodes, self._calibration)
        routable = self._routable(nodes)
        assignments: list[tuple[str, str]] = []
        if routable:
            order = dispatch_order(tasks)
            chosen = self._choose(nodes, routable, len(order))
            assignments = [(tasks[t].task_id, ids[n]) for t, n in zip(order, chosen, strict=True)]
        zone_iii = [i for i, z in zip(ids, reading.zones, strict=True) if z is Zone.III]
        return Plan(
            assignments=assignments,
            held=[] if routable else [task.task_id for task in tasks],
            recycle=zone_iii if self._recycle else [],
            zones=dict(zip(ids, reading.zones, strict=True)),
            lbh=reading.lbh,
            paused=False,
            distances=dict(zip(ids, reading.distances, strict=True)),
        )

    def _routable(self, nodes: Sequence[NodeState]) -> list[int]:
        """Indices of the nodes this strategy may use: every node not DOWN."""
        return [i for i, node in enumerate(nodes) if not node.down]

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        """Node index for each of `count` tasks in dispatch order; `routable` is not empty."""
        raise NotImplementedError


class _RoundRobin(_Baseline):
    """Routable nodes in input order, cycling; the cursor carries over between rounds."""

    name = "round_robin"

    def __init__(self, calibration: Calibration, *, recycle: bool = False) -> None:
        super().__init__(calibration, recycle=recycle)
        self._cursor = 0

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        start = self._cursor
        self._cursor += count
        return [routable[(start + k) % len(routable)] for k in range(count)]


class _Random(_Baseline):
    """A uniformly random routable node per task, from a generator seeded once."""

    name = "random"

    def __init__(self, calibration: Calibration, *, seed: int = 0, recycle: bool = False) -> None:
        super().__init__(calibration, recycle=recycle)
        self._rng = np.random.default_rng(seed)

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        picks = self._rng.integers(0, len(routable), size=count)
        return [routable[k] for k in picks.tolist()]


class _LeastInflight(_Baseline):
    """Least connections: the node with the fewest tasks in flight, counting this round's;
    ties go to the lowest node id."""

    name = "least_inflight"

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        heap = [(nodes[i].inflight, nodes[i].node_id, i) for i in routable]
        heapq.heapify(heap)
        chosen = []
        for _ in range(count):
            load, node_id, i = heap[0]
            chosen.append(i)
            heapq.heapreplace(heap, (load + 1, node_id, i))
        return chosen


class _PowerOfTwo(_Baseline):
    """Power of two choices: two distinct random routable nodes per task, the one with fewer
    tasks in flight (counting this round's) wins; ties go to the lower node id."""

    name = "p2c"

    def __init__(self, calibration: Calibration, *, seed: int = 0, recycle: bool = False) -> None:
        super().__init__(calibration, recycle=recycle)
        self._rng = np.random.default_rng(seed)

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        size = len(routable)
        if size == 1:
            return [routable[0]] * count
        first = self._rng.integers(0, size, size=count)
        # Draw the second among the other size-1 nodes, then skip over the first: distinct.
        second = self._rng.integers(0, size - 1, size=count)
        second += second >= first
        load = {i: nodes[i].inflight for i in routable}
        chosen = []
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            i, j = routable[a], routable[b]
            pick = i if (load[i], nodes[i].node_id) < (load[j], nodes[j].node_id) else j
            load[pick] += 1
            chosen.append(pick)
        return chosen


class _Single(_Baseline):
    """Everything to one node: the thesis's single-client control group.

    With node_id None (default) the node is the routable node of lowest id, chosen afresh each
    round; with a node_id, that node, and every task is held while it is DOWN or absent.
    """

    name = "single"

    def __init__(
        self, calibration: Calibration, *, node_id: str | None = None, recycle: bool = False
    ) -> None:
        super().__init__(calibration, recycle=recycle)
        self._node_id = node_id

    def _routable(self, nodes: Sequence[NodeState]) -> list[int]:
        up = super()._routable(nodes)
        if self._node_id is None:
            return [min(up, key=lambda i: nodes[i].node_id)] if up else []
        return [i for i in up if nodes[i].node_id == self._node_id]

    def _choose(self, nodes: Sequence[NodeState], routable: list[int], count: int) -> list[int]:
        return [routable[0]] * count


_NO_MEMORY_DEMAND: Mapping[TaskClass, float] = MappingProxyType({})


def make_strategy(
    name: str,
    *,
    dis_avemin: float,
    dis_avemax: float,
    delta: float = DEFAULT_DELTA,
    task_memory_mb: Mapping[TaskClass, float] = _NO_MEMORY_DEMAND,
    seed: int = 0,
    node_id: str | None = None,
    recycle: bool = False,
    adaptive: AdaptiveSettings | None = None,
) -> Strategy:
    """The strategy called `name` (one of STRATEGY_NAMES), ValueError for any other name.

    Every strategy needs the calibrated bounds, since every Plan reports zones and LBH. The
    other settings apply where they mean something and are ignored elsewhere, so one settings
    block can build any strategy:
    delta, task_memory_mb: LBH and lbh_adaptive only (defaults DEFAULT_DELTA = 0.05, no memory
        demand).
    seed: random and p2c (default 0).
    node_id: single (default None: the routable node of lowest id).
    recycle: baselines report zone III nodes in Plan.recycle (default False; LBH and
        lbh_adaptive always do).
    adaptive: lbh_adaptive's rules (default None: `AdaptiveSettings()`).
    """
    calibration = Calibration(dis_avemin, dis_avemax)
    if name == "lbh":
        return LBHScheduler.from_calibration(calibration, delta, task_memory_mb)
    if name == "lbh_adaptive":
        return LBHAdaptive(dis_avemin, dis_avemax, delta, task_memory_mb, adaptive)
    if name == "round_robin":
        return _RoundRobin(calibration, recycle=recycle)
    if name == "random":
        return _Random(calibration, seed=seed, recycle=recycle)
    if name == "least_inflight":
        return _LeastInflight(calibration, recycle=recycle)
    if name == "p2c":
        return _PowerOfTwo(calibration, seed=seed, recycle=recycle)
    if name == "single":
        return _Single(calibration, node_id=node_id, recycle=recycle)
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}")
