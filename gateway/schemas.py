"""Response shapes of the gateway's own endpoints (shown in the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClusterNode(BaseModel):
    """One pool node as an operator sees it."""

    model_config = ConfigDict(extra="ignore")

    node_id: str
    status: str = Field(description="life cycle: up, cordoned, draining, restarting, syncing, down")
    zone: str = Field(description="I (writes first), II (reads first), III (recycle), DOWN")
    distance: float = Field(description="d = sqrt(memory^2 + cpu^2)")
    cpu: float = Field(description="smoothed CPU used / cores allotted")
    memory: float = Field(description="smoothed memory used / budget")
    memory_mb: float | None = None
    free_memory_mb: float | None = None
    in_flight: int | None = Field(
        default=None, description="tasks running on the node, when the manager reports it"
    )
    block: int | None = None
    lag: int | None = None
    down_reason: str | None = None
    cordoned: bool = False
    restarts: int = 0


class ClusterView(BaseModel):
    """The cluster as of the manager's last tick."""

    model_config = ConfigDict(extra="ignore")

    nodes: list[ClusterNode]
    lbh: float = Field(description="load balance health over the nodes not DOWN")
    paused: bool = Field(description="LBH < 0: the schedulers pause dispatching")
    dis_ave: float
    dis_avemin: float
    dis_avemax: float
    head: int | None = None
    taken_at: float | None = None

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> ClusterView:
        """From geth_cluster's snapshot (`GET /nodes`), whose node `lifecycle` is our
        `status`; a manager that reports `in_flight` per node has it passed through."""
        nodes = [
            {**node, "status": node.get("status", node.get("lifecycle"))}
            for node in snapshot.get("nodes", [])
        ]
        return cls.model_validate({**snapshot, "nodes": nodes})


class InstanceView(BaseModel):
    """A registered service instance (GET /admin/instances)."""

    instance_id: str
    kind: str
    url: str
    registered_s_ago: float
    last_seen_s_ago: float
    expires_in_s: float
    breaker: str
    consecutive_failures: int
    healthy: bool
