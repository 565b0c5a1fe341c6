"""What a running instance holds, and how a route reaches it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request

from consumer_service.config import ConsumerServiceSettings
from ethgw_wire.messages import ResultMessage, TaskMessage
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.settings import ReadConsistencySettings


class TaskRunner(Protocol):
    """Runs tasks and knows their latest status (TaskClient, or a fake in tests)."""

    async def run(self, task: TaskMessage, timeout_s: float) -> ResultMessage | None: ...

    async def lookup(self, task_id: str) -> ResultMessage | None: ...


class NodeReports(Protocol):
    """The latest report of every node (the node-states topic's mirror)."""

    def items(self) -> list[tuple[str, NodeReport]]: ...


@dataclass
class ServiceState:
    settings: ConsumerServiceSettings
    tasks: TaskRunner
    nodes: NodeReports
    reads: ReadConsistencySettings = field(default_factory=ReadConsistencySettings)

    def chain_head(self) -> int | None:
        """The highest block a node report gives, None when none says."""
        blocks = [report.block for _, report in self.nodes.items() if report.block is not None]
        return max(blocks, default=None)


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


ServiceStateDep = Annotated[ServiceState, Depends(service_state)]
