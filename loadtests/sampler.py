"""CPU and memory of the Geth nodes (and the Python services) while a cell runs,
read with psutil once a second; a node whose pid changed was restarted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx
import psutil

from ethgw_wire.request_auth import ensure_request_key, signing_auth
from ethgw_wire.settings import request_key_file
from loadtests.cpu import CpuLedger
from loadtests.interference import Slowdown
from loadtests.systems import System


@dataclass(frozen=True)
class ResourceSample:
    at: float  # seconds since the cell started
    series: str  # node-1, gateway, provider-1 ...
    kind: str  # "node" or "service"
    cpu_percent: float  # of one core
    rss_mb: float


@dataclass(frozen=True)
class ZoneSample:
    """What the cluster manager thought of a node: the LBH view (ethgw systems only)."""

    at: float
    node: str
    zone: str
    distance: float
    cpu_ratio: float
    lifecycle: str
    lbh: float


@dataclass
class ResourceSampler:
    system: System
    slowed: str | None = None  # the node under the slowdown, re-applied after a restart
    slowdown: Slowdown | None = None
    interval_s: float = 1.0
    samples: list[ResourceSample] = field(default_factory=list)
    zones: list[ZoneSample] = field(default_factory=list)
    restarts: int = 0
    cpu: CpuLedger = field(default_factory=CpuLedger)
    _processes: dict[str, psutil.Process] = field(default_factory=dict)

    def _process(self, series: str, pid: int | None, is_node: bool) -> psutil.Process | None:
        known = self._processes.get(series)
        if known is not None and known.pid == pid:
            return known
        if known is not None and is_node:
            self.restarts += 1
        if pid is None:
            self._processes.pop(series, None)
            return None
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # primes the counter; the next call measures
        except psutil.Error:
            return None
        if is_node and series == self.slowed and self.slowdown is not None:
            with contextlib.suppress(OSError):
                self.slowdown.apply(pid)
        self._processes[series] = process
        return process

    def tick(self, started: float) -> None:
        """One sample of every node and service."""
        targets: list[tuple[str, int | None, bool]] = [
            (name, self.system.node_pid(name), True) for name in self.system.node_names
        ]
        targets += [(name, pid, False) for name, pid in self.system.service_pids().items()]
        now = time.monotonic() - started
        for series, pid, is_node in targets:
            process = self._process(series, pid, is_node)
            if process is None:
                continue
            try:
                cpu = process.cpu_percent(None)
                rss = process.memory_info().rss / 2**20
            except psutil.Error:
                continue
            kind = "node" if is_node else "service"
            self.samples.append(ResourceSample(round(now, 2), series, kind, cpu, rss))
        self.cpu.observe(self._processes)

    async def view(self, client: httpx.AsyncClient, started: float) -> None:
        """One read of the manager's /nodes, when the system has a manager."""
        if self.system.manager_url is None:
            return
        try:
            snapshot = (await client.get(self.system.manager_url + "/nodes")).json()
        except (httpx.HTTPError, ValueError):
            return
        now = round(time.monotonic() - started, 2)
        for node in snapshot.get("nodes", []):
            self.zones.append(
                ZoneSample(now, node["node_id"], str(node["zone"]), float(node["distance"]),
                           float(node["cpu"]), str(node["lifecycle"]), float(snapshot["lbh"]))
            )  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        self.tick(started)  # primes every process (and applies the slowdown)
        self.cpu.start(self._processes)
        # Signed: the manager takes the platform's own calls only (ethgw_wire.request_auth),
        # with the key of the system's state folder, not this process's own (the bench runs
        # each system on a state folder of its own: another key, and every view refused).
        key_file = request_key_file(self.system.state_dir)
        auth = signing_auth(ensure_request_key(key_file)) if self.system.manager_url else None
        async with httpx.AsyncClient(timeout=0.5, trust_env=False, auth=auth) as client:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
                self.tick(started)
                await self.view(client, started)
        self.tick(started)  # the window's last CPU reading, taken as the cell ends
