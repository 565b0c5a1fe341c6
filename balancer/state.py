"""Node state, distance in the state plane, zones and the health LBH (lbh-spec.md 1, 3, 4)."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from balancer.calibration import Calibration


class Zone(StrEnum):
    """Where a node stands in the state plane (section 3); DOWN nodes have no zone."""

    I = "I"  # noqa: E741 - the spec's name
    """Safe zone, d <= Dis_ave: preferred for writes."""
    II = "II"
    """Read zone, Dis_ave < d <= Dis_avemax: preferred for reads."""
    III = "III"
    """Recycle zone, d > Dis_avemax: takes no task, queued for restart."""
    DOWN = "DOWN"
    """RPC silent or too far behind the head: takes no task, left out of LBH."""


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the scheduler knows about one node at the start of a round.

    memory, cpu: the EWMA-smoothed ratios of section 1, each within [0, 1]. The sampler clips
        raw readings to [0, 1]; a value outside that range (or NaN) here is a caller bug and
        raises ValueError rather than being clipped silently.
    inflight: tasks this scheduler dispatched to the node and has not seen finish (>= 0).
    free_memory_mb: memory left for new tasks, already net of the tasks in flight; None means
        unknown, and such a node is always feasible. It may be negative (over budget), which
        makes the node infeasible for every task.
    down: the node is DOWN (section 1): no zone, no task, not in LBH.
    """

    node_id: str
    memory: float
    cpu: float
    inflight: int = 0
    free_memory_mb: float | None = None
    down: bool = False

    def __post_init__(self) -> None:
        for field in ("memory", "cpu"):
            value = float(getattr(self, field))
            if not 0.0 <= value <= 1.0:  # also false for NaN
                raise ValueError(
                    f"NodeState {self.node_id!r}: {field} must be within [0, 1], got {value}"
                )
            object.__setattr__(self, field, value)
        inflight = operator.index(self.inflight)
        if inflight < 0:
            raise ValueError(f"NodeState {self.node_id!r}: inflight must be >= 0, got {inflight}")
        object.__setattr__(self, "inflight", inflight)
        if self.free_memory_mb is not None:
            free = float(self.free_memory_mb)
            if math.isnan(free):
                raise ValueError(f"NodeState {self.node_id!r}: free_memory_mb is NaN")
            object.__setattr__(self, "free_memory_mb", free)


def distance(memory: float, cpu: float) -> float:
    """d = sqrt(m^2 + c^2): a node's distance from the origin of the state plane (eq. 3.1)."""
    return math.sqrt(memory * memory + cpu * cpu)


@dataclass(frozen=True, slots=True)
class Zoning:
    """The plane's reading of one set of nodes: distance and zone per node, and LBH."""

    distances: list[float]
    zones: list[Zone]
    lbh: float


def zoning(nodes: Sequence[NodeState], calibration: Calibration) -> Zoning:
    """Distances, zones (a boundary value belongs to the lower zone) and LBH of `nodes`.

    LBH = sum over nodes not DOWN of (Dis_ave - d_i), added with math.fsum: exactly rounded,
    so its sign, which decides the pause, is that of the true sum and does not depend on the
    order of the nodes.
    """
    count = len(nodes)
    memory = np.fromiter((n.memory for n in nodes), dtype=np.float64, count=count)
    cpu = np.fromiter((n.cpu for n in nodes), dtype=np.float64, count=count)
    down = np.fromiter((n.down for n in nodes), dtype=np.bool_, count=count)
    # The spec's formula literally (not hypot), so callers recomputing d get the same bits.
    d = np.sqrt(memory * memory + cpu * cpu)
    distances = d.tolist()
    ave, high = calibration.dis_ave, calibration.dis_avemax
    zones = [
        Zone.DOWN if is_down else Zone.I if x <= ave else Zone.II if x <= high else Zone.III
        for x, is_down in zip(distances, down.tolist(), strict=True)
    ]
    lbh = math.fsum((ave - d[~down]).tolist())
    return Zoning(distances=distances, zones=zones, lbh=lbh)
