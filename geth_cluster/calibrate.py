"""`ethgw calibrate`: measure Dis_avemin and Dis_avemax on the running cluster (lbh-spec.md s. 2).

Dis_avemin is the mean d of the pool nodes over an idle window (set U1); Dis_avemax the mean d
of the same nodes under a saturating load this module drives itself (set U2): on every pool node,
`concurrency` busy loops each repeat an eth_call of init code that counts down from 0xffff
(~1.7M gas of pure EVM CPU per call, no state read or written, nothing sent to the chain).

The ratios are sampled like the manager samples them (the runtime's sampler every
`sample_interval_s`, smoothed with the manager's EWMA `alpha`), so the bounds describe the
figures the manager will compare against them. The result goes through
`balancer.calibrate` (which validates it) and is written as the calibration file.

Run it on a quiet cluster: traffic during the idle window raises Dis_avemin. On a host with
fewer cores than the nodes are allotted, the saturated CPU ratio stays below 1 (the nodes share
the cores): that is this host's "serves poorly" state, and the value it should use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import httpx

from balancer import Calibration
from balancer.calibration import calibrate, mean_distance
from ethgw_wire.settings import default_calibration_file
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import NodeSpec, pool_specs
from geth_cluster.node_rpc import rpc_call
from geth_cluster.smoothing import Ewma

log = logging.getLogger("ethgw.calibrate")

BURN_CODE = "0x61ffff5b600190038060035700"
"""PUSH2 0xffff; JUMPDEST; PUSH1 1; SWAP1; SUB; DUP1; PUSH1 3; JUMPI; STOP: 65535 iterations."""
BURN_GAS = 30_000_000  # a bound, not a price: eth_call spends only what the loop uses

Sample = tuple[float, float]  # (memory, cpu) smoothed ratios


@dataclass(frozen=True)
class CalibrationRun:
    """What `run_calibration` measured and wrote."""

    calibration: Calibration
    path: Path
    idle: list[Sample]  # one per pool node per interval of the idle window
    saturated: list[Sample]  # likewise, under the load
    calls: int  # burner eth_calls completed during the load

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
) -> CalibrationRun:
    """Measure both bounds on the pool nodes of the running `cluster` and write the file.

    idle_s: the idle window (spec default 10 s). load_s: the saturated window, which starts
    after `warmup_s` of load (the EWMA and the nodes' CPU rising are not counted).
    concurrency: busy loops per pool node. path: where the JSON goes, by default
    `default_calibration_file()`. Raises ValueError when the bounds break
    0 <= Dis_avemin < Dis_avemax <= sqrt(2) (nothing is written then), ClusterError when a node
    is not running.
    """
    if idle_s <= 0 or load_s <= 0 or sample_interval_s <= 0 or warmup_s < 0 or concurrency < 1:
        raise ValueError("windows and the interval must be > 0, concurrency >= 1")
    target = path if path is not None else default_calibration_file()
    specs = pool_specs(cluster.settings)
    sample = _Sampling(cluster, specs, alpha)
    await sample.prime()
    log.info("calibration idle window s=%.1f nodes=%d", idle_s, len(specs))
    idle = await sample.window(idle_s, sample_interval_s)
    log.info("calibration idle mean_d=%.4f samples=%d", mean_distance(idle), len(idle))
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
            await sample.window(warmup_s, sample_interval_s, check=burners)
            saturated = await sample.window(load_s, sample_interval_s, check=burners)
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
    result = calibrate(idle, saturated)
    _write_atomically(target, result.to_json())
    log.info(
        "calibration written path=%s dis_avemin=%.4f dis_avemax=%.4f",
        target,
        result.dis_avemin,
        result.dis_avemax,
    )
    return CalibrationRun(result, target, idle, saturated, calls)


class _Sampling:
    """The pool nodes' samplers and EWMAs, as the manager keeps them."""

    def __init__(self, cluster: GethCluster, specs: list[NodeSpec], alpha: float) -> None:
        settings = cluster.settings
        self._samplers = [
            cluster.runtime.sampler(spec, settings.node_memory_budget_mb, settings.node_cpu_cores)
            for spec in specs
        ]
        self._memory = [Ewma(alpha) for _ in specs]
        self._cpu = [Ewma(alpha) for _ in specs]

    async def prime(self) -> None:
        # A sampler's first CPU reading covers the process's whole life: discard it.
        await asyncio.gather(*(asyncio.to_thread(s.sample) for s in self._samplers))

    async def window(
        self,
        seconds: float,
        interval_s: float,
        check: list[asyncio.Task[None]] | None = None,
    ) -> list[Sample]:
        """Smoothed samples of every node each interval for `seconds`."""
        samples: list[Sample] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await _sleep_or_fail(min(interval_s, max(0.0, end - loop.time())), check or [])
            readings = await asyncio.gather(*(asyncio.to_thread(s.sample) for s in self._samplers))
            for reading, memory, cpu in zip(readings, self._memory, self._cpu, strict=True):
                samples.append((memory.update(reading.memory), cpu.update(reading.cpu)))
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
