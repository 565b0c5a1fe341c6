"""A simulated Geth node: processor sharing that slows with load and memory, memory that creeps.

The node shares its CPU among the calls in flight (processor sharing). Its capacity shrinks

- with concurrency beyond `knee` calls (contention, GC: the overload collapse that admission
  control is meant to prevent),
- with memory pressure above 60% of the budget (GC, swap),
- with a noisy neighbour (a co-tenant taking CPU, on and off) and on a slow host.

Memory is a base, plus a leak that grows with every call served and is only cleared by a
restart, plus what the calls in flight hold. At the budget the node is OOM-killed.

A call may first spend `wait_s` in flight off the node's CPU (the RPC round trip and the
provider's own share of a call): it then holds its memory and counts in flight, but takes no
share of the CPU until the wait is over.

Processor sharing is tracked in virtual time: V grows at the rate one call is served, so a call
added at V0 with work w finishes when V reaches V0 + w, whatever happens in between.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import Enum

from balancer.sim.workload import Arrival


@dataclass(frozen=True, slots=True)
class NodeModel:
    """Physics shared by every node (defaults in brackets are the simulator's assumptions)."""

    budget_mb: float = 1024.0  # memory allotted [1024, as ClusterSettings]
    base_mb: float = 300.0  # resident after start-up
    idle_cpu: float = 0.04  # block import, p2p: CPU ratio of an idle node
    knee: int = 16  # calls served without contention
    contention: float = 0.01  # capacity lost per call beyond the knee
    pressure_from: float = 0.6  # memory ratio where GC pressure starts
    pressure: float = 2.0  # slowdown factor added at a full budget


class Phase(Enum):
    """Lifecycle of a node (spec section 7)."""

    UP = "up"
    DRAINING = "draining"
    RESTARTING = "restarting"


@dataclass
class SimNode:
    """One node's mutable state inside a simulation run."""

    node_id: str
    model: NodeModel
    speed: float = 1.0
    noise: float = 1.0  # capacity left by the neighbour (1.0: no neighbour now)
    wait_s: float = 0.0  # time a call spends in flight before it takes a share of the CPU
    phase: Phase = Phase.UP
    leak_mb: float = 0.0
    virtual: float = 0.0
    clock: float = 0.0
    cpu_s: float = 0.0  # CPU time the node's process got (a neighbour's share is not ours)
    version: int = 0  # bumped on every change, to drop stale completion events
    jobs: list[tuple[float, int, Arrival]] = field(default_factory=list)  # (finish V, seq, call)
    waiting: list[tuple[float, int, Arrival]] = field(default_factory=list)  # (ready at, seq, call)
    jobs_mb: float = 0.0
    _seq: int = 0

    @property
    def inflight(self) -> int:
        """Calls sent to the node and not finished: on the CPU or still in their wait."""
        return len(self.jobs) + len(self.waiting)

    @property
    def memory_mb(self) -> float:
        return self.model.base_mb + self.leak_mb + self.jobs_mb

    @property
    def resident_mb(self) -> float:
        """Memory not held by calls in flight."""
        return self.model.base_mb + self.leak_mb

    def capacity(self) -> float:
        """Work-seconds served per second, shared by the calls in flight."""
        m = self.model
        over = max(0, len(self.jobs) - m.knee)
        ratio = self.memory_mb / m.budget_mb
        squeeze = max(0.0, (ratio - m.pressure_from) / (1.0 - m.pressure_from))
        slowdown = (1.0 + m.contention * over) * (1.0 + m.pressure * squeeze**2)
        return self.speed * self.noise / slowdown

    def advance(self, now: float) -> None:
        """Serve the calls in flight from the node's clock up to `now`."""
        elapsed = now - self.clock
        if self.jobs and elapsed > 0:
            self.virtual += elapsed * self.capacity() / len(self.jobs)
            self.cpu_s += elapsed * self.noise
        self.clock = now

    def add(self, call: Arrival, now: float) -> None:
        self.advance(now)
        self._seq += 1
        if self.wait_s > 0.0:
            heapq.heappush(self.waiting, (now + self.wait_s, self._seq, call))
        else:
            heapq.heappush(self.jobs, (self.virtual + call.kind.work_s, self._seq, call))
        self.jobs_mb += call.kind.memory_mb
        self.version += 1

    def next_finish(self) -> float:
        """When the first call in flight finishes, or the first wait ends, if nothing
        changes; inf if neither."""
        ready = self.waiting[0][0] if self.waiting else math.inf
        if not self.jobs:
            return ready
        left = self.jobs[0][0] - self.virtual
        return min(ready, self.clock + max(0.0, left) * len(self.jobs) / self.capacity())

    def finish(self, now: float) -> list[Arrival]:
        """Advance to `now`, take out the calls done by then and put the calls whose wait is
        over on the CPU."""
        self.advance(now)
        done = []
        while self.jobs and self.jobs[0][0] <= self.virtual + 1e-12:
            _, _, call = heapq.heappop(self.jobs)
            self.jobs_mb -= call.kind.memory_mb
            self.leak_mb += call.kind.leak_mb
            done.append(call)
        while self.waiting and self.waiting[0][0] <= now:
            _, seq, call = heapq.heappop(self.waiting)
            heapq.heappush(self.jobs, (self.virtual + call.kind.work_s, seq, call))
        if not self.inflight:
            self.jobs_mb = 0.0  # no float dust left behind
        self.version += 1
        return done

    def kill(self, now: float) -> list[Arrival]:
        """Stop the process: the calls in flight are lost, the leaked memory is freed."""
        self.advance(now)
        lost = [call for _, _, call in self.jobs + self.waiting]
        self.jobs.clear()
        self.waiting.clear()
        self.jobs_mb = 0.0
        self.leak_mb = 0.0
        self.version += 1
        return lost

    def set_noise(self, noise: float, now: float) -> None:
        self.advance(now)
        self.noise = noise
        self.version += 1

    def out_of_memory(self) -> bool:
        return self.memory_mb > self.model.budget_mb

    def sample(self, cpu_s_before: float, interval_s: float) -> tuple[float, float]:
        """Raw (memory ratio, CPU ratio) over the last interval, clipped to [0, 1].

        The CPU ratio is the CPU time the process got per second: a node slowed by a noisy
        neighbour looks less busy than it is, as it would to docker stats.
        """
        memory = min(1.0, self.memory_mb / self.model.budget_mb)
        cpu = min(1.0, self.model.idle_cpu + (self.cpu_s - cpu_s_before) / interval_s)
        return memory, cpu
