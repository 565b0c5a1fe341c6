"""Slowing one node down for the heterogeneous scenario, as a host would.

Preferred: a CPU cap on the node's process through a cgroup (v1 `cpu.cfs_quota_us`
or v2 `cpu.max`), the same mechanism as a container's `--cpus`. Where no cgroup
can be written, a noisy neighbour instead: the node and a busy process are pinned
to the same core. The slowdown follows the node across restarts (`apply` with the
new pid), because the interference belongs to the host, not to the process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import psutil

from geth_cluster.cgroups import Allotment, CgroupLimit


class Slowdown:
    """A limit on one node's CPU; `apply(pid)` puts a (new) process under it."""

    description = "none"

    def apply(self, pid: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CgroupCpuCap(Slowdown):
    """The node's processes in a cgroup of their own with a CPU quota (geth_cluster.cgroups,
    the mechanism the process runtime confines every node with in the node-bound scenario)."""

    def __init__(self, cores: float, name: str) -> None:
        self._limit = CgroupLimit(name, Allotment(cores))
        self.description = f"CPU cap of {cores:g} core (cgroup {self._limit.group})"

    def apply(self, pid: int) -> None:
        self._limit.add(pid)

    def throttled_periods(self) -> int:
        """How many quota periods the group hit its cap in (cpu.stat nr_throttled)."""
        return self._limit.throttled_periods()

    def close(self) -> None:
        self._limit.close()


class NoisyNeighbour(Slowdown):
    """The node and a busy loop share one core."""

    def __init__(self, core: int = 0) -> None:
        self._core = core
        self._burner = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        psutil.Process(self._burner.pid).cpu_affinity([core])
        self.description = f"noisy neighbour: a busy process pinned with the node to core {core}"

    def apply(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).cpu_affinity([self._core])

    def close(self) -> None:
        self._burner.kill()
        self._burner.wait(10)


def slow_down(cores: float, name: str) -> Slowdown:
    """A cgroup CPU cap when this host lets us make one, else a noisy neighbour."""
    try:
        return CgroupCpuCap(cores, f"{name}-{os.getpid()}")
    except OSError:
        return NoisyNeighbour()
