"""CPU seconds each kind of process spent over a measured window, from psutil's
cpu_times: the cost of a request hop by hop, which a latency figure cannot show.

Every process of a system is one `series` (gateway, read-1, provider-1, kafka, node-2,
...); `kind_of` groups the series into the kinds the benchmark reports. A process
that is replaced while the window runs (a node restarted) counts with both pids.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

# The kinds in the order reports list them; "manager" is the `ethgw up` process,
# which runs the cluster manager.
CPU_KINDS: tuple[str, ...] = (
    "gateway",
    "services",
    "provider",
    "kafka",
    "nodes",
    "manager",
    "monolith",
)


def kind_of(series: str) -> str:
    """The kind of process a series name stands for."""
    if series.startswith(("read-", "write-")):
        return "services"
    if series.startswith("provider"):
        return "provider"
    if series.startswith("node-") or series == "sealer":
        return "nodes"
    if series in CPU_KINDS:
        return series
    return "manager"


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class _Seen:
    series: str
    first: float
    last: float


@dataclass
class CpuLedger:
    """CPU seconds per series between `start` and the last `observe`.

    A process first seen after `start` (a restarted node, a service that came up late)
    is charged from its birth: it did not exist when the window opened. Its creation
    time cannot tell that, since psutil derives it from a boot time in whole seconds."""

    _seen: dict[int, _Seen] = field(default_factory=dict)
    # (wall-clock time, seconds_by_kind then): what lets a shorter window be cut out of it
    _timeline: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def start(self, processes: Mapping[str, psutil.Process], at: float | None = None) -> None:
        self._seen.clear()
        self._timeline.clear()
        self._read(processes, charge_from_birth=False)
        self._mark(at)

    def observe(self, processes: Mapping[str, psutil.Process], at: float | None = None) -> None:
        self._read(processes, charge_from_birth=True)
        self._mark(at)

    def _mark(self, at: float | None) -> None:
        self._timeline.append((time.time() if at is None else at, self.seconds_by_kind()))

    def seconds_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per kind from wall-clock `start` to `end`, each read off the
        readings on either side of it (linearly): the counted part of a cell, without
        the users' set-up before it."""
        return {
            kind: max(
                0.0, _spent_at(self._timeline, end, kind) - _spent_at(self._timeline, start, kind)
            )
            for kind in CPU_KINDS
        }

    def _read(self, processes: Mapping[str, psutil.Process], charge_from_birth: bool) -> None:
        for series, process in processes.items():
            try:
                used = cpu_seconds(process)
            except psutil.Error:
                continue
            seen = self._seen.get(process.pid)
            if seen is None or seen.series != series:
                seen = _Seen(series, 0.0 if charge_from_birth else used, used)
                self._seen[process.pid] = seen
            seen.last = used

    def seconds_by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for seen in self._seen.values():
            totals[kind_of(seen.series)] += max(0.0, seen.last - seen.first)
        return {kind: totals.get(kind, 0.0) for kind in CPU_KINDS}


def _spent_at(timeline: list[tuple[float, dict[str, float]]], at: float, kind: str) -> float:
    """A kind's CPU seconds at wall-clock `at`, between the readings around it (the first or
    last reading outside them)."""
    if not timeline:
        return 0.0
    times = [t for t, _ in timeline]
    after = bisect.bisect_left(times, at)
    if after == 0:
        return timeline[0][1][kind]
    if after == len(timeline):
        return timeline[-1][1][kind]
    (t0, before), (t1, later) = timeline[after - 1], timeline[after]
    share = (at - t0) / (t1 - t0) if t1 > t0 else 1.0
    return before[kind] + share * (later[kind] - before[kind])


def ms_per_request(seconds_by_kind: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request of each kind, and of them all as `total`."""
    if requests <= 0:
        return {kind: 0.0 for kind in (*CPU_KINDS, "total")}
    per = {kind: round(1000 * s / requests, 2) for kind, s in seconds_by_kind.items()}
    per["total"] = round(1000 * sum(seconds_by_kind.values()) / requests, 2)
    return per
