"""The seam between the cluster and how its nodes run (local processes, containers)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from geth_cluster.layout import NodeSpec
from geth_cluster.stats import ResourceSample


class Sampler(Protocol):
    """Reads one node's resource usage; each call measures since the previous one."""

    def sample(self) -> ResourceSample: ...


class NodeRuntime(ABC):
    """Starts, stops and observes Geth nodes; the geth arguments are the caller's."""

    name: str

    @abstractmethod
    async def start(self, spec: NodeSpec, geth_args: list[str]) -> None:
        """Launch the node in the background and return at once."""

    @abstractmethod
    async def run_once(self, spec: NodeSpec, geth_args: list[str]) -> tuple[int, str]:
        """Run geth to completion (e.g. `geth init`); return its exit code and output."""

    @abstractmethod
    async def stop(self, spec: NodeSpec, timeout_s: float = 30.0) -> None:
        """Stop the node gracefully, forcefully after `timeout_s`; no error if not running."""

    @abstractmethod
    async def is_running(self, spec: NodeSpec) -> bool:
        """Whether the node's process or container is alive."""

    @abstractmethod
    def pid(self, spec: NodeSpec) -> int | None:
        """The node's host process id, or None when it is not running."""

    @abstractmethod
    def sampler(self, spec: NodeSpec, memory_budget_mb: float, cpu_cores: float) -> Sampler:
        """A sampler of the running node (raises if it is not running)."""

    @abstractmethod
    def log_tail(self, spec: NodeSpec, lines: int = 20) -> str:
        """The last lines the node wrote, for error messages."""

    @abstractmethod
    async def close(self) -> None:
        """Release clients the runtime holds."""
