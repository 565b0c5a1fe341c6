"""A service app in this process, with a fake task runner instead of Kafka."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from consumer_service import ConsumerServiceSettings, ServiceState
from ethgw_wire.messages import ErrorInfo, ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.node_reports import Lifecycle, NodeReport
from ethgw_wire.request_auth import signing_auth


@dataclass
class FakeTasks:
    """Answers every task with `outcome` (None: the wait ran out) and keeps what it ran."""

    outcome: str | None = "succeeded"
    data: Any = None
    error: ErrorInfo | None = None
    ran: list[TaskMessage] = field(default_factory=list)
    known: dict[str, ResultMessage] = field(default_factory=dict)

    async def run(self, task: TaskMessage, timeout_s: float) -> ResultMessage | None:
        self.ran.append(task)
        if self.outcome is None:
            return None
        return ResultMessage(
            task_id=task.task_id,
            operation=task.operation,
            status=TaskStatus(self.outcome),
            data=self.data,
            error=self.error,
        )

    async def lookup(self, task_id: str) -> ResultMessage | None:
        return self.known.get(task_id)


@dataclass
class FakeNodes:
    reports: list[NodeReport] = field(default_factory=list)

    def items(self) -> list[tuple[str, NodeReport]]:
        return [(report.node_id, report) for report in self.reports]


def node_report(node_id: str, lifecycle: Lifecycle, age_s: float = 0.0) -> NodeReport:
    return NodeReport(
        node_id=node_id,
        rpc_url="http://127.0.0.1:1",
        memory=0.1,
        cpu=0.1,
        lifecycle=lifecycle,
        sampled_at=time.time() - age_s,
    )


@asynccontextmanager
async def serving(
    app: FastAPI, tasks: FakeTasks, nodes: FakeNodes | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app whose state holds the fakes (its Kafka lifespan never runs)."""
    app.state.service = ServiceState(ConsumerServiceSettings(), tasks, nodes or FakeNodes())
    transport = httpx.ASGITransport(app)
    # Signed, as the gateway signs (ethgw_wire.request_auth): the app takes nothing else.
    async with httpx.AsyncClient(
        transport=transport, base_url="http://service", auth=signing_auth()
    ) as client:
        yield client
