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
from pathlib import Path

import psutil

CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class Slowdown:
    """A limit on one node's CPU; `apply(pid)` puts a (new) process under it."""

    description = "none"

    def apply(self, pid: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CgroupCpuCap(Slowdown):
    """The node's processes in a cgroup of their own with a CPU quota."""

    def __init__(self, cores: float, name: str) -> None:
        quota = max(1000, int(cores * PERIOD_US))
        if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
            self._root = CGROUP_V1_CPU
            self._group = CGROUP_V1_CPU / name
            self._group.mkdir(exist_ok=True)
            (self._group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self._group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            self._root = CGROUP_V2
            self._group = CGROUP_V2 / name
            self._group.mkdir(exist_ok=True)
            (self._group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        self.description = f"CPU cap of {cores:g} core (cgroup {self._group})"

    def apply(self, pid: int) -> None:
        (self._group / "cgroup.procs").write_text(str(pid))

    def throttled_periods(self) -> int:
        """How many quota periods the group hit its cap in (cpu.stat nr_throttled)."""
        for line in (self._group / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        return 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for line in (self._group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self._root / "cgroup.procs").write_text(line)
            self._group.rmdir()


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
