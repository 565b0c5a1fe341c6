"""Node states on Kafka: what the cluster manager publishes and the providers route by."""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Lifecycle(StrEnum):
    """A node's life-cycle state (lbh-spec.md section 7); only UP nodes take tasks."""

    UP = "up"
    CORDONED = "cordoned"  # out of routing by the operator, not restarted
    DRAINING = "draining"  # out of routing, waiting for in-flight tasks before a restart
    RESTARTING = "restarting"
    SYNCING = "syncing"  # back, catching up with the head
    DOWN = "down"  # RPC does not answer or too far behind


class NodeReport(BaseModel):
    """One node's smoothed state; published keyed by node id on the node-states topic."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1
    node_id: str
    rpc_url: str
    memory: float = Field(ge=0.0, le=1.0)  # EWMA of memory used / budget
    cpu: float = Field(ge=0.0, le=1.0)  # EWMA of CPU used / cores allotted
    free_memory_mb: float | None = None
    block: int | None = None
    lag: int | None = None  # blocks behind the highest head in the cluster
    lifecycle: Lifecycle = Lifecycle.UP
    restarts: int = 0
    sampled_at: float = Field(default_factory=time.time)

    @property
    def routable(self) -> bool:
        return self.lifecycle is Lifecycle.UP


class EventKind(StrEnum):
    """What happened to a node, as the cluster manager's event log says it."""

    DRAINING = "draining"
    RESTARTING = "restarting"
    SYNCING = "syncing"
    UP = "up"
    CORDONED = "cordoned"
    UNCORDONED = "uncordoned"
    RESTART_FAILED = "restart_failed"


class ClusterEvent(BaseModel):
    """One step of a node's life cycle (a recycle step, a cordon); published, keyed by node,
    on the events topic and kept in the manager's recent-events list."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1
    time: float = Field(default_factory=time.time)
    node: str
    kind: EventKind
    reason: str | None = None  # "zone3" or "operator" for a restart's steps
    detail: str = ""
