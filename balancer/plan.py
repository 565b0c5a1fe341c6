"""The answer of every strategy for one round, and the interface every strategy implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from balancer.state import NodeState, Zone
from balancer.tasks import Task


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one round's tasks (lbh-spec.md section 9).

    assignments: (task_id, node_id) pairs in dispatch order.
    held: ids of the tasks not dispatched this round, in input order.
    recycle: ids of the nodes in zone III, in input order (restart candidates, before the
        consecutive-sample and cool-down rules of RecyclePolicy).
    zones: zone of every node by id.
    lbh: the cluster's health; paused is True exactly when lbh < 0 (and the strategy pauses).
    distances: d of every node by id (extra to section 9; lets a caller apply the safety valve).
    """

    assignments: list[tuple[str, str]]
    held: list[str]
    recycle: list[str]
    zones: dict[str, Zone]
    lbh: float
    paused: bool
    distances: dict[str, float] = field(default_factory=dict)


class Strategy(Protocol):
    """A way of placing one round's tasks on nodes; LBH and the baselines all implement it."""

    @property
    def name(self) -> str:
        """The name `make_strategy` knows the strategy by."""
        ...

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        """Place `tasks` on `nodes`; the NodeState objects are not changed."""
        ...
