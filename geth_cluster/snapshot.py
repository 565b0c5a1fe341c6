"""What the cluster manager shows of the pool after each tick.

Its own module so that the manager, which builds these views, and the recycler, which reads
them, both import it and neither imports the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from balancer import Zone
from ethgw_wire.node_reports import Lifecycle


class DownReason(StrEnum):
    """Why a node is DOWN (lbh-spec.md section 1), as the logs and the operator view say it."""

    PROCESS = "process"  # the runtime has no running process/container for it
    SAMPLER = "sampler"  # reading its resource usage failed
    RPC = "rpc"  # its JSON-RPC did not answer within rpc_timeout_s
    LAG = "lag"  # more than max_lag blocks behind the highest head
    # Back at the head, but its pending state is still built on the head it restarted on:
    # gas estimated there for a contract deployed since runs out on chain.
    STALE_PENDING = "stale_pending"


@dataclass(frozen=True)
class NodeSnapshot:
    """One pool node as of the last tick: its published state plus zone and distance."""

    node_id: str
    lifecycle: Lifecycle
    zone: Zone
    distance: float
    memory: float
    cpu: float
    memory_mb: float | None
    free_memory_mb: float | None
    block: int | None
    lag: int | None
    down_reason: DownReason | None
    cordoned: bool
    restarts: int
    samples: int
    sampled_at: float


@dataclass(frozen=True)
class Snapshot:
    """The cluster as of the last tick: every pool node, LBH and the bounds it was judged by."""

    nodes: tuple[NodeSnapshot, ...]
    lbh: float  # over the nodes not DOWN (lbh-spec.md section 4)
    paused: bool  # LBH < 0: the schedulers pause dispatching
    dis_avemin: float
    dis_avemax: float
    dis_ave: float
    head: int | None  # highest block any node answered with
    ticks: int
    tick_seconds: float  # wall time the last tick took (RPC, sampling, zoning)
    taken_at: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (enums become their string values)."""
        data = asdict(self)
        for node in data["nodes"]:
            for key in ("lifecycle", "zone", "down_reason"):
                if node[key] is not None:
                    node[key] = str(node[key])
        return data
