"""Resource sampling of one node: the memory and CPU ratios of lbh-spec.md section 1."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

_MB = 1024 * 1024


@dataclass(frozen=True)
class ResourceSample:
    """Raw (unsmoothed) usage of a node, as ratios of what it was allotted."""

    memory: float  # memory used / memory budget, clipped to [0, 1]
    cpu: float  # CPU seconds per second / cores allotted, clipped to [0, 1]
    memory_mb: float
    cpu_cores_used: float


def ratio(used: float, allotted: float) -> float:
    """used / allotted, clipped to [0, 1]."""
    return min(1.0, max(0.0, used / allotted))


class ProcessSampler:
    """Samples a local process with psutil; CPU is measured between two calls.

    The first sample measures CPU over the process's whole life so far, so even
    the first call returns a meaningful figure.
    """

    def __init__(self, pid: int, memory_budget_mb: float, cpu_cores: float) -> None:
        self._process = psutil.Process(pid)
        self._memory_budget_mb = memory_budget_mb
        self._cpu_cores = cpu_cores
        self._last_cpu = 0.0
        self._last_at = self._process.create_time()

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def sample(self) -> ResourceSample:
        """Raises psutil.NoSuchProcess when the process is gone."""
        with self._process.oneshot():
            times = self._process.cpu_times()
            rss = self._process.memory_info().rss
        now = time.time()
        cpu_total = times.user + times.system
        elapsed = max(now - self._last_at, 1e-6)
        cores_used = max(0.0, cpu_total - self._last_cpu) / elapsed
        self._last_cpu, self._last_at = cpu_total, now
        memory_mb = rss / _MB
        return ResourceSample(
            memory=ratio(memory_mb, self._memory_budget_mb),
            cpu=ratio(cores_used, self._cpu_cores),
            memory_mb=memory_mb,
            cpu_cores_used=cores_used,
        )
