"""Hypothesis generators for the balancer's inputs, skewed towards ties and boundaries."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

from balancer import LBHScheduler, NodeState, Task, TaskClass

# A few round values make ties in d, in d_hat and on the zone boundaries likely.
_RATIOS = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]),
    st.floats(0.0, 1.0),
)
_FREE_MB = st.one_of(
    st.none(),
    st.sampled_from([-5.0, 0.0, 1.0, 5.0, 10.0, 20.0, 50.0]),
    st.floats(-10.0, 200.0),
)
_DEMAND_MB = st.sampled_from([0.0, 1.0, 2.5, 5.0, 10.0, 30.0])


@dataclass(frozen=True)
class Settings:
    """The scheduler's arguments, kept as data so a test can rebuild or inspect them."""

    dis_avemin: float
    dis_avemax: float
    delta: float
    task_memory_mb: dict[TaskClass, float]

    @property
    def dis_ave(self) -> float:
        return (self.dis_avemin + self.dis_avemax) / 2

    def scheduler(self) -> LBHScheduler:
        return LBHScheduler(self.dis_avemin, self.dis_avemax, self.delta, self.task_memory_mb)

    def demand(self, cls: TaskClass) -> float:
        return self.task_memory_mb.get(cls, 0.0)


@st.composite
def bounds(draw: st.DrawFn) -> tuple[float, float]:
    """A valid (dis_avemin, dis_avemax) pair."""
    low = draw(st.one_of(st.sampled_from([0.0, 0.2, 0.4, 0.6]), st.floats(0.0, 1.2)))
    high = draw(st.one_of(st.sampled_from([1.0, 1.2, math.sqrt(2)]), st.floats(low, math.sqrt(2))))
    if not low < high:
        low, high = 0.2, 1.0
    return low, high


@st.composite
def settings(draw: st.DrawFn) -> Settings:
    """Scheduler settings: valid bounds, a delta (ties likely), some memory demands."""
    low, high = draw(bounds())
    delta = draw(st.one_of(st.sampled_from([0.0, 0.05, 0.1]), st.floats(0.0, 0.5)))
    demand = draw(st.dictionaries(st.sampled_from(list(TaskClass)), _DEMAND_MB))
    return Settings(low, high, delta, demand)


@st.composite
def node_lists(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> list[NodeState]:
    """Nodes with unique ids (not in id order), some DOWN, some with a free-memory figure."""
    ids = draw(
        st.lists(st.sampled_from("ABCDEFGHJK"), unique=True, min_size=min_size, max_size=max_size)
    )
    return [
        NodeState(
            node_id=node_id,
            memory=draw(_RATIOS),
            cpu=draw(_RATIOS),
            inflight=draw(st.integers(0, 4)),
            free_memory_mb=draw(_FREE_MB),
            down=draw(st.integers(0, 3)) == 0,  # one node in four is DOWN
        )
        for node_id in ids
    ]


@st.composite
def task_lists(draw: st.DrawFn, min_size: int = 0, max_size: int = 25) -> list[Task]:
    """Tasks with unique ids, few accounts (so chains form) and tied enqueue times."""
    count = draw(st.integers(min_size, max_size))
    return [
        Task(
            task_id=f"t{i}",
            cls=draw(st.sampled_from(list(TaskClass))),
            account=draw(st.one_of(st.none(), st.sampled_from(["X", "Y", "Z"]))),
            enqueued_at=draw(st.sampled_from([0.0, 1.0, 2.0, 3.0])),
        )
        for i in range(count)
    ]


@st.composite
def zoned_nodes(draw: st.DrawFn, dis_ave: float, dis_avemax: float) -> list[NodeState]:
    """Two to eight nodes, about half of zone I (mostly near the origin) and half of zone II."""
    ids = draw(st.lists(st.sampled_from("ABCDEFGHJK"), unique=True, min_size=2, max_size=8))
    nodes = []
    for k, node_id in enumerate(ids):
        d = draw(st.floats(0.0, dis_ave / 2) if k % 2 else st.floats(dis_ave + 0.01, dis_avemax))
        angle = draw(st.floats(0.0, math.pi / 2))
        memory, cpu = min(1.0, d * math.cos(angle)), min(1.0, d * math.sin(angle))
        nodes.append(NodeState(node_id, memory, cpu, draw(st.integers(0, 3))))
    return nodes


def tight(nodes: list[NodeState], free_mb: list[float]) -> list[NodeState]:
    """The same nodes with little free memory each (cycling through `free_mb`)."""
    return [
        NodeState(n.node_id, n.memory, n.cpu, n.inflight, free_mb[i % len(free_mb)], n.down)
        for i, n in enumerate(nodes)
    ]


def calm(nodes: list[NodeState], scale: float) -> list[NodeState]:
    """The same nodes moved towards the origin by `scale`, so fewer rounds are paused."""
    return [
        NodeState(n.node_id, n.memory * scale, n.cpu * scale, n.inflight, n.free_memory_mb, n.down)
        for n in nodes
    ]
