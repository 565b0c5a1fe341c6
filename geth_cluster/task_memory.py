"""Each task class's memory need on a node (lbh-spec.md section 6, the table `t_mem`).

A class's need is the node memory one task of that class holds while it runs: on every pool
node at once, `concurrency` loops repeat the node-side calls of a task of the class (its probe)
for `burst_s`; the node's memory (the runtime sampler's figure: a process's RSS, a container's
usage) is read every `interval_s`, and the class's need on a node is

    (highest reading during the burst - the reading before the first burst) / concurrency

averaged over the pool nodes. The classes run one after another from the lightest to the
heaviest (RT, MAT, MCT, DT), and every class is measured against the same reading taken before
the first burst: memory a node took for a lighter class is rarely given back within seconds
(Geth's Go heap keeps it), so a heavier class's figure includes it. Each figure is therefore an
upper bound of its class's own need, which is the safe side for a capacity check.

The probes send nothing to the chain, like the calibration's saturating load, so measuring on a
running stack changes no state:
- RT: a balance and the latest block, as the platform's reads ask.
- MAT: the faucet's pending nonce, the gas estimate of a funding transfer and a receipt poll,
  as account.create's funding step asks.
- MCT: the pending nonce and the gas estimate of PlatformToken.publishProject, run against the
  token's runtime code placed at a probe address by a state override (the token need not be
  deployed).
- DT: the pending nonce and the gas estimate of deploying PlatformToken (its constructor runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from balancer import TaskClass
from ethgw_wire.artifacts import ContractArtifact, constructor_data, load_artifact
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import NodeSpec, pool_specs
from geth_cluster.node_rpc import rpc_call
from geth_cluster.runtimes.base import Sampler

MEASURED_ORDER = (TaskClass.RT, TaskClass.MAT, TaskClass.MCT, TaskClass.DT)
"""Lightest first: each figure includes what the classes before it left on the node."""

PROBE_ADDRESS = "0x" + "e7" * 20  # where the MCT probe's state override puts the token's code
_TOKEN_ARGS = (100, 10)  # publish reward and default price, as `ethgw up` deploys it

Call = tuple[str, list[Any]]  # a JSON-RPC method and its parameters
Progress = Callable[[str, float, float], None]


@dataclass(frozen=True)
class TaskMemoryMeasurement:
    """The need of each class in MB, and how it was measured (kept in the calibration file)."""

    need_mb: dict[str, float]  # by class name, every class present
    baseline_mb: list[float]  # each pool node's reading before the first burst
    peak_mb: dict[str, list[float]]  # by class name: each pool node's highest reading
    concurrency: int  # probe loops per pool node
    burst_s: float
    interval_s: float
    calls: dict[str, int]  # probe rounds completed per class

    def table(self) -> dict[TaskClass, float]:
        """The need per class, as the scheduler's `task_memory_mb` takes it."""
        return {TaskClass(name): mb for name, mb in self.need_mb.items()}

    def describe(self) -> str:
        """One line: `RT=0.31 MAT=0.58 MCT=1.19 DT=1.21 MB per task`."""
        figures = " ".join(f"{name}={self.need_mb[name]:.2f}" for name in TaskClass)
        return f"{figures} MB per task"


def need_per_task(baseline: Sequence[float], peak: Sequence[float], concurrency: int) -> float:
    """The mean over nodes of (peak - baseline) / concurrency, never below 0 (a node may give
    memory back during a burst)."""
    growth = [max(0.0, high - low) for low, high in zip(baseline, peak, strict=True)]
    return round(sum(growth) / len(growth) / concurrency, 3)


class Probes:
    """The node-side calls of one task of each class (module docstring)."""

    def __init__(self, faucet: str, token: ContractArtifact) -> None:
        self._faucet = faucet
        self._token = token
        self._deploy = constructor_data(token.abi, token.bytecode, list(_TOKEN_ARGS))
        selector = keccak(text="publishProject(string,bytes32,uint64)")[:4]
        arguments = encode(["string", "bytes32", "uint64"], ["probe", b"\x01" * 32, 1])
        self._publish = "0x" + (selector + arguments).hex()

    def calls(self, cls: TaskClass) -> list[Call]:
        """The calls of one task of `cls`, with fresh random addresses where a task has them."""
        nonce: Call = ("eth_getTransactionCount", [self._faucet, "pending"])
        if cls is TaskClass.RT:
            return [
                ("eth_getBalance", [self._faucet, "latest"]),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        if cls is TaskClass.MAT:
            funding = {"from": self._faucet, "to": _random_hex(20), "value": "0x1"}
            return [
                nonce,
                ("eth_estimateGas", [funding]),
                ("eth_getTransactionReceipt", [_random_hex(32)]),
            ]
        if cls is TaskClass.MCT:
            publish = {"from": self._faucet, "to": PROBE_ADDRESS, "data": self._publish}
            override = {PROBE_ADDRESS: {"code": self._token.deployed_bytecode}}
            return [nonce, ("eth_estimateGas", [publish, "latest", override])]
        return [nonce, ("eth_estimateGas", [{"from": self._faucet, "data": self._deploy}])]


async def measure_task_memory(
    cluster: GethCluster,
    *,
    concurrency: int = 8,
    burst_s: float = 3.0,
    interval_s: float = 0.5,
    progress: Progress | None = None,
) -> TaskMemoryMeasurement:
    """Measure every class's need on the pool nodes of the running `cluster` (module docstring).

    progress: called after every reading with the window's name ("task RT", ...), the seconds
    done and the burst's length. Raises ValueError for a non-positive setting, the probe's
    error when a node refuses a probe call (NodeUnreachableError, RpcError).
    """
    if concurrency < 1 or burst_s <= 0 or interval_s <= 0:
        raise ValueError("concurrency must be >= 1, burst_s and interval_s > 0")
    specs = pool_specs(cluster.settings)
    settings = cluster.settings
    samplers = [
        cluster.runtime.sampler(
            spec, settings.node_memory_budget_mb, settings.cpu_cores_of(spec.name)
        )
        for spec in specs
    ]
    probes = Probes(cluster.accounts.faucet.address, load_artifact("PlatformToken"))
    baseline = await _readings(samplers)
    peaks: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=30.0) as http:
        for cls in MEASURED_ORDER:
            burst = _Burst(http, specs, probes, cls, concurrency)
            peaks[cls.value], calls[cls.value] = await burst.run(
                samplers, burst_s, interval_s, progress
            )
    need = {cls.value: need_per_task(baseline, peaks[cls.value], concurrency) for cls in TaskClass}
    return TaskMemoryMeasurement(
        need, baseline, {c.value: peaks[c.value] for c in TaskClass}, concurrency, burst_s,
        interval_s, {c.value: calls[c.value] for c in TaskClass},
    )  # fmt: skip


class _Burst:
    """`concurrency` loops per node repeating one class's probe."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        specs: list[NodeSpec],
        probes: Probes,
        cls: TaskClass,
        concurrency: int,
    ) -> None:
        self._http = http
        self._specs = specs
        self._probes = probes
        self._cls = cls
        self._concurrency = concurrency
        self._rounds = 0

    async def _loop(self, spec: NodeSpec, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for method, params in self._probes.calls(self._cls):
                await rpc_call(self._http, spec.rpc_url, method, params)
            self._rounds += 1

    async def run(
        self,
        samplers: list[Sampler],
        burst_s: float,
        interval_s: float,
        progress: Progress | None,
    ) -> tuple[list[float], int]:
        """Each node's highest reading during the burst, and the probe rounds completed."""
        stop = asyncio.Event()
        loops = [
            asyncio.create_task(self._loop(spec, stop), name=f"task-memory-{spec.name}")
            for spec in self._specs
            for _ in range(self._concurrency)
        ]
        peak = [0.0] * len(samplers)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while (elapsed := loop.time() - start) < burst_s:
                await asyncio.sleep(min(interval_s, burst_s - elapsed))
                _raise_if_failed(loops)
                readings = await _readings(samplers)
                peak = [max(high, now) for high, now in zip(peak, readings, strict=True)]
                if progress is not None:
                    progress(f"task {self._cls.value}", min(loop.time() - start, burst_s), burst_s)
        finally:
            stop.set()
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return peak, self._rounds


def _raise_if_failed(loops: list[asyncio.Task[None]]) -> None:
    """A probe loop that ended on its own met an error: raise it (a node refused a probe)."""
    for task in loops:
        if task.done():
            task.result()
            raise RuntimeError("a probe loop ended while the burst was running")


async def _readings(samplers: list[Sampler]) -> list[float]:
    """Each node's memory in MB now."""
    samples = await asyncio.gather(*(asyncio.to_thread(s.sample) for s in samplers))
    return [sample.memory_mb for sample in samples]


def _random_hex(size: int) -> str:
    return "0x" + secrets.token_hex(size)
