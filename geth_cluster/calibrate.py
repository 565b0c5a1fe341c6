"""`ethgw calibrate`: measure Dis_avemin and Dis_avemax on the running cluster (lbh-spec.md s. 2).

Dis_avemin is the mean d of the pool nodes over an idle window (set U1); Dis_avemax the mean d
of the same nodes under a saturating load this module drives itself (set U2): on every pool node,
`concurrency` busy loops each repeat an eth_call of init code that counts down from 0xffff
(~1.7M gas of pure EVM CPU per call, no state read or written, nothing sent to the chain).

The ratios are sampled like the manager samples them (the runtime's sampler every
`sample_interval_s`, smoothed with the manager's EWMA `alpha`), so the bounds describe the
figures the manager will compare against them. The result goes through
`balancer.calibrate` (which validates it) and is written as the calibration file, with the
inputs it holds for and how it was measured (`calibration_record`).

Between the two windows, each task class's memory need is measured (`task_memory`, lbh-spec.md
section 6) and stored in the same record, where the providers read it.

`ensure_calibration` is `ethgw up`'s step: it reuses the stored bounds when their inputs are the
current ones, and measures otherwise.

Run it on a quiet cluster: traffic during the idle window raises Dis_avemin. On a host with
fewer cores than the nodes are allotted, the saturated CPU ratio stays below 1 (the nodes share
the cores): that is this host's "serves poorly" state, and the value it should use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from balancer import Calibration
from balancer.calibration import calibrate, mean_distance
from ethgw_wire.settings import default_calibration_file
from geth_cluster.calibration_record import (
    CalibrationInputs,
    CalibrationMethod,
    CalibrationRecord,
    current_inputs,
    read_record,
    why_measure,
)
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import NodeSpec, pool_specs
from geth_cluster.node_rpc import rpc_call
from geth_cluster.smoothing import Ewma
from geth_cluster.task_memory import TaskMemoryMeasurement, measure_task_memory
from geth_cluster.toolchain import geth_binary

log = logging.getLogger("ethgw.calibrate")

BURN_CODE = "0x61ffff5b600190038060035700"
"""PUSH2 0xffff; JUMPDEST; PUSH1 1; SWAP1; SUB; DUP1; PUSH1 3; JUMPI; STOP: 65535 iterations."""
BURN_GAS = 30_000_000  # a bound, not a price: eth_call spends only what the loop uses

PROBE = f"eth_call of the init code {BURN_CODE} (a count-down from 0xffff)"

Sample = tuple[float, float]  # (memory, cpu) smoothed ratios
Progress = Callable[[str, float, float], None]
"""Called after each sample with the window's name ("idle", "warm-up", "load"), the seconds
done and the window's length, so a caller can show a progress line."""


@dataclass(frozen=True)
class CalibrationRun:
    """What `run_calibration` measured and wrote."""

    record: CalibrationRecord
    path: Path
    idle: list[Sample]  # one per pool node per interval of the idle window
    saturated: list[Sample]  # likewise, under the load
    calls: int  # burner eth_calls completed during the load

    @property
    def task_memory(self) -> TaskMemoryMeasurement:
        """Each class's memory need, measured between the two windows."""
        assert self.record.task_memory is not None  # run_calibration always measures it
        return self.record.task_memory

    @property
    def calibration(self) -> Calibration:
        return self.record.calibration

    @property
    def idle_mean(self) -> float:
        return self.calibration.dis_avemin

    @property
    def saturated_mean(self) -> float:
        return self.calibration.dis_avemax


async def run_calibration(
    cluster: GethCluster,
    *,
    idle_s: float = 10.0,
    load_s: float = 10.0,
    warmup_s: float = 3.0,
    sample_interval_s: float = 1.0,
    alpha: float = 0.5,
    concurrency: int = 4,
    path: Path | None = None,
    progress: Progress | None = None,
    task_burst_s: float = 3.0,
    task_concurrency: int = 8,
) -> CalibrationRun:
    """Measure both bounds on the pool nodes of the running `cluster` and write the file.

    idle_s: the idle window (spec default 10 s). load_s: the saturated window, which starts
    after `warmup_s` of load (the EWMA and the nodes' CPU rising are not counted).
    concurrency: busy loops per pool node. task_burst_s, task_concurrency: each task class's
    burst, between the windows (`measure_task_memory`). path: where the record goes, by default
    `default_calibration_file()`. progress: called after every sample. Raises ValueError when
    the bounds break 0 <= Dis_avemin < Dis_avemax <= sqrt(2) (nothing is written then),
    ClusterError when a node is not running.
    """
    if idle_s <= 0 or load_s <= 0 or sample_interval_s <= 0 or warmup_s < 0 or concurrency < 1:
        raise ValueError("windows and the interval must be > 0, concurrency >= 1")
    target = path if path is not None else default_calibration_file()
    inputs = await asyncio.to_thread(cluster_inputs, cluster)
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    specs = pool_specs(cluster.settings)
    sample = _Sampling(cluster, specs, alpha, progress)
    await sample.prime()
    log.info("calibration idle window s=%.1f nodes=%d", idle_s, len(specs))
    idle = await sample.window("idle", idle_s, sample_interval_s)
    log.info("calibration idle mean_d=%.4f samples=%d", mean_distance(idle), len(idle))
    task_memory = await _measure_task_memory(cluster, task_burst_s, task_concurrency, progress)
    calls = 0
    async with httpx.AsyncClient(timeout=30.0) as http:
        stop = asyncio.Event()

        async def burn(spec: NodeSpec) -> None:
            nonlocal calls
            while not stop.is_set():
                call = {"data": BURN_CODE, "gas": hex(BURN_GAS)}
                await rpc_call(http, spec.rpc_url, "eth_call", [call, "latest"])
                calls += 1

        burners = [
            asyncio.create_task(burn(spec), name=f"calibrate-burn-{spec.name}")
            for spec in specs
            for _ in range(concurrency)
        ]
        try:
            log.info(
                "calibration load concurrency=%d per node warmup_s=%.1f", concurrency, warmup_s
            )
            await sample.window("warm-up", warmup_s, sample_interval_s, check=burners)
            saturated = await sample.window("load", load_s, sample_interval_s, check=burners)
        finally:
            stop.set()
            for task in burners:
                task.cancel()
            for task in burners:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    log.info(
        "calibration saturated mean_d=%.4f samples=%d calls=%d",
        mean_distance(saturated),
        len(saturated),
        calls,
    )
    method = CalibrationMethod(
        measured_at, idle_s, warmup_s, load_s, sample_interval_s, alpha, concurrency, PROBE, calls
    )
    record = CalibrationRecord(calibrate(idle, saturated), inputs, method, task_memory)
    _write_atomically(target, record.to_json())
    log.info(
        "calibration written path=%s dis_avemin=%.4f dis_avemax=%.4f",
        target,
        record.calibration.dis_avemin,
        record.calibration.dis_avemax,
    )
    return CalibrationRun(record, target, idle, saturated, calls)


async def _measure_task_memory(
    cluster: GethCluster, burst_s: float, concurrency: int, progress: Progress | None
) -> TaskMemoryMeasurement:
    log.info("calibration task memory burst_s=%.1f concurrency=%d", burst_s, concurrency)
    measured = await measure_task_memory(
        cluster, concurrency=concurrency, burst_s=burst_s, progress=progress
    )
    log.info("calibration task memory %s", measured.describe())
    return measured


def cluster_inputs(cluster: GethCluster) -> CalibrationInputs:
    """The inputs a calibration of `cluster` on this machine has now (runs `geth version`)."""
    return current_inputs(cluster.settings, cluster.runtime.name, geth_binary())


@dataclass(frozen=True)
class EnsuredCalibration:
    """The bounds `ensure_calibration` settled on and how it got them."""

    record: CalibrationRecord
    path: Path
    measured_now: bool
    reason: str | None  # why it measured; None when it reused the record

    def describe(self) -> str:
        """One line for the start-up output: the bounds and where they came from."""
        bounds = self.record.calibration
        how = (
            f"measured now ({self.reason})"
            if self.measured_now
            else f"reused, measured on {self.record.method.measured_on}"
        )
        needs = "" if self.record.task_memory is None else f"; {self.record.task_memory.describe()}"
        return (
            f"Dis_avemin={bounds.dis_avemin:.4f} Dis_avemax={bounds.dis_avemax:.4f}{needs}: {how}"
        )


async def ensure_calibration(
    cluster: GethCluster, path: Path | None = None, progress: Progress | None = None
) -> EnsuredCalibration:
    """The stored record at `path` when its inputs are the cluster's and the machine's now;
    otherwise a new measurement (`run_calibration`'s defaults, about 35 s) written there."""
    target = path if path is not None else default_calibration_file()
    stored = await asyncio.to_thread(read_record, target)
    reason = why_measure(stored, await asyncio.to_thread(cluster_inputs, cluster))
    if stored is not None and reason is None:
        return EnsuredCalibration(stored, target, measured_now=False, reason=None)
    log.info("calibration needed path=%s reason=%s", target, reason)
    run = await run_calibration(cluster, path=target, progress=progress)
    return EnsuredCalibration(run.record, target, measured_now=True, reason=reason)


class _Sampling:
    """The pool nodes' samplers and EWMAs, as the manager keeps them."""

    def __init__(
        self,
        cluster: GethCluster,
        specs: list[NodeSpec],
        alpha: float,
        progress: Progress | None,
    ) -> None:
        settings = cluster.settings
        self._progress = progress
        self._samplers = [
            cluster.runtime.sampler(
                spec, settings.node_memory_budget_mb, settings.cpu_cores_of(spec.name)
            )
            for spec in specs
        ]
        self._memory = [Ewma(alpha) for _ in specs]
        self._cpu = [Ewma(alpha) for _ in specs]

    async def prime(self) -> None:
        # A sampler's first CPU reading covers the process's whole life: discard it.
        await asyncio.gather(*(asyncio.to_thread(s.sample) for s in self._samplers))

    async def window(
        self,
        name: str,
        seconds: float,
        interval_s: float,
        check: list[asyncio.Task[None]] | None = None,
    ) -> list[Sample]:
        """Smoothed samples of every node each interval for `seconds`."""
        samples: list[Sample] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds
        while loop.time() < end:
            await _sleep_or_fail(min(interval_s, max(0.0, end - loop.time())), check or [])
            readings = await asyncio.gather(*(asyncio.to_thread(s.sample) for s in self._samplers))
            for reading, memory, cpu in zip(readings, self._memory, self._cpu, strict=True):
                samples.append((memory.update(reading.memory), cpu.update(reading.cpu)))
            if self._progress is not None:
                self._progress(name, min(loop.time() - start, seconds), seconds)
        return samples


async def _sleep_or_fail(seconds: float, tasks: list[asyncio.Task[None]]) -> None:
    """Sleep, but raise at once the error of a load task that failed (a node stopped answering)."""
    sleeper: Awaitable[None] = asyncio.sleep(seconds)
    if not tasks:
        await sleeper
        return
    waiting = asyncio.ensure_future(sleeper)
    done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiting:
            waiting.cancel()
            task.result()  # raises the burner's error
            raise RuntimeError("a load task ended while the load was running")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
