"""Geth nodes as Docker containers, through the docker SDK, behind the same seam as processes.

Each node is one container of the locally built image (`docker_image.py`):

- host networking, so the geth arguments (loopback ports) are those of the process runtime;
- the node's datadir bind-mounted at the same path, read-write, and every other file the
  arguments name (genesis, the sealer's password file) read-only at its own path; geth runs
  as the calling user, so the sealer's IPC socket (in its datadir) is the manager's to open;
- a memory limit of `node_memory_budget_mb` (swap included) and `cpu_cores_of(node)` CPUs, the
  figures LBH measures the node against;
- named `ethgw-<hash of the state folder>-<node>`, so two clusters (two test sessions) never
  clash, and labelled with the cluster's hash and state folder, so `ethgw down` finds them.

A stopped container is kept (its log stays readable) and started again when the node is started
with the same image, arguments and limits; otherwise it is replaced. The SDK is blocking: every
call from a coroutine runs in a thread. The sync parts of the seam (`pid`, `sampler`) touch no
socket: the container's host pid, read from inspect when it starts, is kept in the node folder
and checked with psutil, as the process runtime does with its pid file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import psutil
from docker import DockerClient
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from ethgw_wire.settings import ClusterSettings
from geth_cluster.errors import DockerEngineError
from geth_cluster.layout import NodeSpec, cluster_id
from geth_cluster.runtimes.base import NodeRuntime
from geth_cluster.runtimes.docker_image import ensure_geth_image
from geth_cluster.stats import ResourceSample, ratio

log = logging.getLogger("ethgw.docker")

PID_NAME = "geth.pid"
LABEL_CLUSTER = "ethgw.cluster"  # hash of the state folder
LABEL_STATE_DIR = "ethgw.state-dir"
LABEL_NODE = "ethgw.node"
LABEL_CONFIG = "ethgw.config"  # hash of image, arguments and limits
_MB = 1024 * 1024
_NS = 1e9


class DockerRuntime(NodeRuntime):
    """Runs each node as a container of the local Geth image, with the cluster's limits."""

    name = "docker"

    def __init__(
        self,
        settings: ClusterSettings,
        geth_binary: Path,
        client_factory: Callable[[], DockerClient] = docker.from_env,
    ) -> None:
        self._settings = settings
        self._geth = geth_binary
        self._client_factory = client_factory
        self._client: DockerClient | None = None
        self._client_lock = threading.Lock()
        self._image: str | None = None
        self._streams: dict[str, StatsStream] = {}
        self.cluster_id = cluster_id(settings.state_dir)

    # -- the engine and the image ------------------------------------------------------

    def client(self) -> DockerClient:
        """The SDK client, connected on first use (blocking: call it from a thread)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> DockerClient:
        try:
            return self._client_factory()
        except DockerException as error:
            raise DockerEngineError(
                f"no Docker engine answers ({error}); `ethgw up --runtime docker` "
                "installs and starts one"
            ) from None

    async def image(self) -> str:
        """The Geth image's tag, imported on first use."""
        if self._image is None:
            # In a thread, the first connection to the engine included.
            self._image = await asyncio.to_thread(
                lambda: ensure_geth_image(self.client(), self._geth)
            )
        return self._image

    def container_name(self, spec: NodeSpec) -> str:
        return f"ethgw-{self.cluster_id}-{spec.name}"

    # -- the seam --------------------------------------------------------------------------

    async def start(self, spec: NodeSpec, geth_args: list[str]) -> None:
        image = await self.image()
        spec.datadir.mkdir(parents=True, exist_ok=True)
        pid = await asyncio.to_thread(self._start_container, spec, geth_args, image)
        (spec.datadir / PID_NAME).write_text(str(pid))

    def _start_container(self, spec: NodeSpec, geth_args: list[str], image: str) -> int:
        config = self._config_hash(spec, image, geth_args)
        name = self.container_name(spec)
        container = self._find(name)
        if container is not None and container.labels.get(LABEL_CONFIG) != config:
            container.remove(force=True)
            container = None
        if container is None:
            container = self.client().containers.create(
                image,
                geth_args,
                name=name,
                labels={**self._labels(spec), LABEL_CONFIG: config},
                **self._host_config(spec, geth_args),
            )
        container.start()
        container.reload()
        log.info("container started node=%s name=%s id=%s", spec.name, name, container.short_id)
        return int(container.attrs["State"]["Pid"])

    async def run_once(self, spec: NodeSpec, geth_args: list[str]) -> tuple[int, str]:
        image = await self.image()
        spec.datadir.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(self._run_throwaway, spec, geth_args, image)

    def _run_throwaway(self, spec: NodeSpec, geth_args: list[str], image: str) -> tuple[int, str]:
        name = f"{self.container_name(spec)}-once"
        leftover = self._find(name)
        if leftover is not None:
            leftover.remove(force=True)
        container = self.client().containers.create(
            image,
            geth_args,
            name=name,
            labels=self._labels(spec),
            **self._host_config(spec, geth_args),
        )
        try:
            container.start()
            code = int(container.wait(timeout=300)["StatusCode"])
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        return code, output

    async def stop(self, spec: NodeSpec, timeout_s: float = 30.0) -> None:
        await asyncio.to_thread(self._stop_container, spec, timeout_s)
        (spec.datadir / PID_NAME).unlink(missing_ok=True)

    def _stop_container(self, spec: NodeSpec, timeout_s: float) -> None:
        container = self._find(self.container_name(spec))
        if container is not None:
            # SIGTERM, SIGKILL after the timeout (docker's own escalation).
            container.stop(timeout=math.ceil(timeout_s))
            log.info("container stopped node=%s", spec.name)

    async def is_running(self, spec: NodeSpec) -> bool:
        state = await asyncio.to_thread(self._state, spec)
        running = bool(state and state.get("Running"))
        pid_file = spec.datadir / PID_NAME
        if running and state is not None:
            # The engine may have restarted it behind our back: keep the pid file current.
            pid_file.write_text(str(state["Pid"]))
        return running

    def _state(self, spec: NodeSpec) -> dict[str, Any] | None:
        container = self._find(self.container_name(spec))
        return None if container is None else dict(container.attrs["State"])

    def pid(self, spec: NodeSpec) -> int | None:
        try:
            process = psutil.Process(int((spec.datadir / PID_NAME).read_text()))
            alive = process.status() != psutil.STATUS_ZOMBIE
            # The pid file outlives the container; a reused pid is not ours.
            ours = str(spec.datadir) in " ".join(process.cmdline())
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        return int(process.pid) if alive and ours else None

    def sampler(self, spec: NodeSpec, memory_budget_mb: float, cpu_cores: float) -> DockerSampler:
        if self.pid(spec) is None:
            raise psutil.NoSuchProcess(pid=-1, name=spec.name, msg="container is not running")
        name = self.container_name(spec)
        return DockerSampler(lambda: self.latest_stats(name), name, memory_budget_mb, cpu_cores)

    def latest_stats(self, container: str) -> dict[str, Any] | None:
        """The newest stats frame of the container, opening its stream on first use (blocking:
        the first call connects and waits for the first frame)."""
        with self._client_lock:
            stream = self._streams.get(container)
        if stream is None or not stream.alive:
            # Its own connection: a stream holds one for as long as it runs.
            stream = StatsStream(self._new_client(), container)
            with self._client_lock:
                self._streams[container] = stream
        return stream.latest()

    def log_tail(self, spec: NodeSpec, lines: int = 20) -> str:
        """The container's last lines (a blocking call, made only on the way to an error)."""
        try:
            container = self._find(self.container_name(spec))
            if container is None:
                return ""
            return str(container.logs(tail=lines).decode(errors="replace"))
        except DockerException as error:
            return f"(log unavailable: {error})"

    async def close(self) -> None:
        """End the stats streams and close the SDK's connections; the containers keep running."""
        with self._client_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.close()
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # -- beyond the seam: clean-up and inspection ---------------------------------------------

    async def remove_all(self) -> int:
        """Stop and remove every container of this cluster (found by label); how many."""
        return await asyncio.to_thread(self._remove_all)

    def _remove_all(self) -> int:
        found = self.client().containers.list(
            all=True, filters={"label": f"{LABEL_CLUSTER}={self.cluster_id}"}
        )
        for container in found:
            container.remove(force=True)
        log.info("containers removed cluster=%s count=%d", self.cluster_id, len(found))
        return len(found)

    async def inspect(self, spec: NodeSpec) -> dict[str, Any]:
        """The engine's inspect document of the node's container (raises NotFound)."""
        container = await asyncio.to_thread(self.client().containers.get, self.container_name(spec))
        return dict(container.attrs)

    # -- helpers --------------------------------------------------------------------------------

    def _find(self, name: str) -> Container | None:
        try:
            return self.client().containers.get(name)
        except NotFound:
            return None

    def _labels(self, spec: NodeSpec) -> dict[str, str]:
        return {
            LABEL_CLUSTER: self.cluster_id,
            LABEL_STATE_DIR: str(self._settings.state_dir.resolve()),
            LABEL_NODE: spec.name,
        }

    def _config_hash(self, spec: NodeSpec, image: str, geth_args: list[str]) -> str:
        limits = (self._settings.node_memory_budget_mb, self._settings.cpu_cores_of(spec.name))
        return hashlib.sha256(json.dumps([image, geth_args, limits]).encode()).hexdigest()[:16]

    def _host_config(self, spec: NodeSpec, geth_args: list[str]) -> dict[str, Any]:
        memory = int(self._settings.node_memory_budget_mb * _MB)
        return {
            "network_mode": "host",
            # geth as the user that owns the state folder (0700, its files 0600): it reads
            # the sealer's password and keystore and makes the IPC socket the manager opens.
            "user": f"{os.getuid()}:{os.getgid()}",
            "volumes": bind_mounts(spec.datadir, geth_args),
            "mem_limit": memory,
            "memswap_limit": memory,  # no swap: over the budget is over
            # A node's own figure when it has one (the benchmark's slowed node): a real cap.
            "nano_cpus": int(self._settings.cpu_cores_of(spec.name) * _NS),
            "stop_signal": "SIGTERM",
        }


def bind_mounts(datadir: Path, geth_args: list[str]) -> dict[str, dict[str, str]]:
    """The datadir read-write, and each existing file the arguments name read-only."""
    mounts = {str(datadir): {"bind": str(datadir), "mode": "rw"}}
    for arg in geth_args:
        path = Path(arg)
        if path.is_absolute() and path.is_file() and not path.is_relative_to(datadir):
            mounts[str(path)] = {"bind": str(path), "mode": "ro"}
    return mounts


class StatsStream:
    """One container's Engine API stats stream, read in a daemon thread: the engine sends a
    frame a second, and the newest is kept.

    Why a stream: a one-shot stats request waits for the engine's next collection (0.8 s on
    average, measured here), which would eat the manager's whole 1 s tick; the latest frame of
    a stream is there at once. The stream survives stops and starts of the container and ends
    when the container is removed, the engine goes away, or close() is called.
    """

    STALE_S = 5.0  # a frame older than this means the stream stopped delivering

    def __init__(self, client: DockerClient, container: str) -> None:
        self._client = client
        self._container = container
        self._latest: dict[str, Any] | None = None
        self._received_at = 0.0
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._read, name=f"docker-stats-{container}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self._client.api.stats(self._container, stream=True, decode=True):
                with self._lock:
                    self._latest, self._received_at = frame, time.monotonic()
                if _complete(frame):
                    self._first.set()
                if self._closed.is_set():
                    break  # leaving the generator closes the response
        except DockerException as error:
            log.debug("stats stream ended container=%s error=%s", self._container, error)
        finally:
            self._first.set()
            self._client.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed.is_set()

    def latest(self, wait_s: float = 5.0) -> dict[str, Any] | None:
        """The newest frame (waiting up to `wait_s` for the first complete one), None when stale
        or ended."""
        self._first.wait(wait_s)
        with self._lock:
            if self._latest is None or time.monotonic() - self._received_at > self.STALE_S:
                return None
            return self._latest

    def close(self) -> None:
        self._closed.set()


def _complete(frame: dict[str, Any]) -> bool:
    """A frame a sample can use: it carries the previous reading (a stream's first frame does
    not, so its CPU delta would be zero), or it is a stopped container's (no usage at all)."""
    previous = (frame.get("precpu_stats") or {}).get("system_cpu_usage")
    return bool(previous) or not (frame.get("memory_stats") or {}).get("usage")


@dataclass(frozen=True)
class _CpuReading:
    used_ns: int  # the container's CPU time so far
    host_ns: int  # the host's CPU time so far (all cores)
    online: int  # the host's online CPUs


class DockerSampler:
    """Samples a container through the Engine API's stats; CPU is measured between two calls.

    CPU: the container's CPU time against the host's (cpu_delta / system_delta * online_cpus,
    the figure `docker stats` shows) gives the cores used, taken as a ratio of the cores
    allotted. The deltas run from the frame the previous call used to the newest; the first
    call (or one that finds no newer frame) uses the newest frame's own delta over the engine's
    last second. Memory: usage minus page cache, like a process's resident set. A gone or
    stopped container raises psutil.NoSuchProcess, as a gone process does.
    """

    def __init__(
        self,
        frames: Callable[[], dict[str, Any] | None],
        container: str,
        memory_budget_mb: float,
        cpu_cores: float,
    ) -> None:
        self._frames = frames
        self._container = container
        self._memory_budget_mb = memory_budget_mb
        self._cpu_cores = cpu_cores
        self._last: _CpuReading | None = None

    def sample(self) -> ResourceSample:
        """One reading (may wait for the stream's first frame: the manager calls it in a thread)."""
        frame = self._frames()
        memory = (frame or {}).get("memory_stats") or {}
        if frame is None or not memory.get("usage"):
            raise psutil.NoSuchProcess(pid=-1, name=self._container, msg="container not running")
        now = _cpu_reading(frame["cpu_stats"])
        before = self._last
        if before is None or now.host_ns <= before.host_ns or now.used_ns < before.used_ns:
            before = _cpu_reading(frame.get("precpu_stats") or {})
        cores_used = _cores(before, now)
        self._last = now
        inner = memory.get("stats") or {}
        cache = inner.get("cache", inner.get("inactive_file", 0))  # cgroup v1, v2
        memory_mb = max(0, int(memory["usage"]) - int(cache)) / _MB
        return ResourceSample(
            memory=ratio(memory_mb, self._memory_budget_mb),
            cpu=ratio(cores_used, self._cpu_cores),
            memory_mb=memory_mb,
            cpu_cores_used=cores_used,
        )


def _cpu_reading(cpu: dict[str, Any]) -> _CpuReading:
    usage = cpu.get("cpu_usage") or {}
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or [1])
    return _CpuReading(
        int(usage.get("total_usage", 0)), int(cpu.get("system_cpu_usage", 0)), int(online)
    )


def _cores(before: _CpuReading, now: _CpuReading) -> float:
    """Cores used between two readings: the container's share of the host's CPU time."""
    system_delta = now.host_ns - before.host_ns
    if before.host_ns == 0 or system_delta <= 0:
        return 0.0
    return max(0.0, (now.used_ns - before.used_ns) / system_delta * now.online)


__all__ = ["DockerRuntime", "DockerSampler", "StatsStream", "cluster_id"]
