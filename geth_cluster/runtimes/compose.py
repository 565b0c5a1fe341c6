"""Geth nodes as containers someone else made (compose.yaml's), adopted by label.

The Docker runtime creates and owns its containers (host network, bind mounts from the Docker
host). Under compose the node containers already exist: compose made them, on its private
network, with the chain in a volume; the manager only starts, stops and samples them. A node's
container is the one labelled `ethgw.node=<node name>` and `ClusterSettings.compose_selector`
(a `key=value` label every node container of the stack carries). The manager runs in a
container of its own, so a node's host pid means nothing to psutil there: liveness and pids come
from the engine, read by a daemon thread every second, so the sync parts of the seam (`pid`,
`sampler`) touch no socket. Sampling is the Docker runtime's: one stats stream per container.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import docker
import psutil
from docker import DockerClient
from docker.errors import DockerException
from docker.models.containers import Container

from ethgw_wire.settings import ClusterSettings
from geth_cluster.errors import DockerEngineError, NodeStartError
from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes.base import NodeRuntime
from geth_cluster.runtimes.docker import LABEL_NODE, DockerSampler, StatsStream

log = logging.getLogger("ethgw.compose")

REFRESH_S = 1.0  # how often the containers' states are read from the engine


@dataclass(frozen=True)
class _Seen:
    """A node's container as the engine last described it."""

    name: str
    running: bool
    pid: int | None


class ComposeRuntime(NodeRuntime):
    """Starts, stops and samples existing node containers; never creates one."""

    name = "compose"

    def __init__(
        self,
        settings: ClusterSettings,
        client_factory: Callable[[], DockerClient] = docker.from_env,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._selector = settings.compose_selector
        self._client_factory = client_factory
        self._refresh_s = refresh_s
        self._client: DockerClient | None = None
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self._streams: dict[str, StatsStream] = {}
        self._watching: threading.Thread | None = None
        self._closed = threading.Event()

    # -- the engine ------------------------------------------------------------------------

    def client(self) -> DockerClient:
        """The SDK client, connected on first use (blocking: call it from a thread)."""
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> DockerClient:
        try:
            return self._client_factory()
        except DockerException as error:
            raise DockerEngineError(f"no Docker engine answers ({error})") from None

    def _containers(self) -> dict[str, Container]:
        """The stack's node containers by node name (the selector's, labelled with a node)."""
        found = self.client().containers.list(all=True, filters={"label": [self._selector]})
        return {c.labels[LABEL_NODE]: c for c in found if LABEL_NODE in c.labels}

    def _container(self, spec: NodeSpec) -> Container:
        container = self._containers().get(spec.name)
        if container is None:
            raise NodeStartError(
                f"no container labelled {LABEL_NODE}={spec.name} and {self._selector}: "
                "the compose runtime only adopts containers compose made"
            )
        return container

    def refresh(self) -> None:
        """Read every node container's state from the engine (blocking)."""
        seen = {}
        for node, container in self._containers().items():
            state = container.attrs.get("State") or {}
            running = bool(state.get("Running"))
            seen[node] = _Seen(container.name, running, int(state["Pid"]) if running else None)
        with self._lock:
            self._seen = seen

    def _watch(self) -> None:
        while not self._closed.is_set():
            try:
                self.refresh()
            # Any error, not only DockerException: a lost engine raises requests' errors or
            # DockerEngineError, and a dead watcher would leave every pid stale for good.
            except Exception as error:
                log.warning("container states unreadable error=%s", error)
            self._closed.wait(self._refresh_s)

    def _ensure_watching(self) -> None:
        with self._lock:
            if self._watching is None and not self._closed.is_set():
                self._watching = threading.Thread(
                    target=self._watch, name="compose-containers", daemon=True
                )
                self._watching.start()

    # -- the seam --------------------------------------------------------------------------

    async def start(self, spec: NodeSpec, geth_args: list[str]) -> None:
        """Start the node's container as compose made it (its own command: `geth_args` are
        the cluster's view of the same flags)."""
        await asyncio.to_thread(self._start, spec)

    def _start(self, spec: NodeSpec) -> None:
        container = self._container(spec)
        container.start()
        log.info("container started node=%s name=%s", spec.name, container.name)
        self.refresh()

    async def run_once(self, spec: NodeSpec, geth_args: list[str]) -> tuple[int, str]:
        raise NodeStartError(
            f"{spec.name}: compose's node containers run `geth init` in their own entrypoint"
        )

    async def stop(self, spec: NodeSpec, timeout_s: float = 30.0) -> None:
        await asyncio.to_thread(self._stop, spec, timeout_s)

    def _stop(self, spec: NodeSpec, timeout_s: float) -> None:
        container = self._containers().get(spec.name)
        if container is not None:
            container.stop(timeout=math.ceil(timeout_s))  # SIGTERM, SIGKILL after the timeout
            log.info("container stopped node=%s", spec.name)
        self.refresh()

    async def is_running(self, spec: NodeSpec) -> bool:
        await asyncio.to_thread(self.refresh)
        return self.pid(spec) is not None

    def pid(self, spec: NodeSpec) -> int | None:
        """The container's host pid as last read (None while stopped or not found)."""
        self._ensure_watching()
        with self._lock:
            seen = self._seen.get(spec.name)
        return seen.pid if seen is not None and seen.running else None

    def sampler(self, spec: NodeSpec, memory_budget_mb: float, cpu_cores: float) -> DockerSampler:
        with self._lock:
            seen = self._seen.get(spec.name)
        if seen is None or not seen.running:
            raise psutil.NoSuchProcess(pid=-1, name=spec.name, msg="container is not running")
        name = seen.name
        return DockerSampler(lambda: self._latest_stats(name), name, memory_budget_mb, cpu_cores)

    def _latest_stats(self, container: str) -> dict[str, object] | None:
        with self._lock:
            stream = self._streams.get(container)
        if stream is None or not stream.alive:
            stream = StatsStream(self._new_client(), container)  # its own connection
            with self._lock:
                self._streams[container] = stream
        return stream.latest()

    def log_tail(self, spec: NodeSpec, lines: int = 20) -> str:
        """The container's last lines (blocking, made only on the way to an error)."""
        try:
            container = self._containers().get(spec.name)
            return (
                ""
                if container is None
                else str(container.logs(tail=lines).decode(errors="replace"))
            )
        except (DockerException, DockerEngineError) as error:
            return f"(log unavailable: {error})"

    async def close(self) -> None:
        """Stop watching, end the stats streams, close the client; the containers keep running."""
        self._closed.set()
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
            watching = self._watching
        for stream in streams:
            stream.close()
        if watching is not None:
            await asyncio.to_thread(watching.join, 5.0)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None


__all__ = ["ComposeRuntime"]
