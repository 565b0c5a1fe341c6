"""The systems under test, each on ports and a state folder of its own, so a
benchmark runs beside a developer's `make up` and beside test sessions.

- `EthgwSystem`: the whole platform, started by `ethgw up` (devstack/stack.py) as a
  child process with the benchmark's ports and state folder.
- `MonolithSystem`: one Geth service node (plus the sealer) and the monolith
  baseline (loadtests/monolith.py) calling it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from devstack.processes import terminate
from devstack.stack import ServicePorts, Shape
from ethgw_wire.http_api import API_KEY_HEADER
from ethgw_wire.settings import ClusterSettings, PlatformSettings
from geth_cluster.cgroups import Allotment
from service_kit.paths import REPO_ROOT
from service_kit.ports import is_port_free

PORT_SPAN = 400  # ports a system takes from its base (see Ports)
# The scrypt cost of the accounts a benchmark makes and unlocks (ETHGW_KEYSTORE_SCRYPT_N).
# Not the standard 2^18: the mix's creates and unlocks (10% of its calls) would each hold a
# core for half a second, so scrypt, not the pipeline, would be what the benchmark measures;
# 2^14 is also the cost every figure in docs/benchmarks.md was measured at.
BENCH_SCRYPT_N = {"ETHGW_KEYSTORE_SCRYPT_N": str(2**14)}


@dataclass(frozen=True)
class Ports:
    """Every port of one system, from one base: Geth, Kafka, the manager, the services."""

    base: int

    @property
    def p2p(self) -> int:
        return self.base

    @property
    def rpc(self) -> int:
        return self.base + 20

    @property
    def authrpc(self) -> int:
        return self.base + 40

    @property
    def kafka(self) -> int:
        return self.base + 60

    @property
    def manager(self) -> int:
        return self.base + 62

    @property
    def gateway(self) -> int:
        return self.base + 100  # read +100, write +150, providers +200 from here

    @property
    def monolith(self) -> int:
        return self.base + 90

    def env(self) -> dict[str, str]:
        return {
            "ETHGW_CLUSTER_P2P_PORT_BASE": str(self.p2p),
            "ETHGW_CLUSTER_RPC_PORT_BASE": str(self.rpc),
            "ETHGW_CLUSTER_AUTHRPC_PORT_BASE": str(self.authrpc),
            "ETHGW_KAFKA_PORT": str(self.kafka),
            "ETHGW_KAFKA_CONTROLLER_PORT": str(self.kafka + 1),
            "ETHGW_MANAGER_API_PORT": str(self.manager),
        }


def free_ports(start: int = 10_000, stop: int = 19_000) -> Ports:
    """A base whose whole span is free, below the test fixtures' blocks (19100+) and
    the kernel's ephemeral range; tried in a random order, like the test fixtures."""
    bases = list(range(start, stop, PORT_SPAN))
    for base in random.sample(bases, len(bases)):
        if all(is_port_free(p) for p in range(base, base + PORT_SPAN - 50)):
            return Ports(base)
    raise RuntimeError(f"no free block of {PORT_SPAN} ports in {start}-{stop}")


@dataclass
class System:
    """What a benchmark cell needs of a running system."""

    name: str
    url: str  # where the REST API is (without /api/v1)
    api_key: str
    state_dir: Path
    node_names: list[str]
    node_rpc: dict[str, str] = field(default_factory=dict)  # node name -> RPC URL
    manager_url: str | None = None  # the cluster manager (zones, distances), if any
    process_pids: dict[str, int] = field(default_factory=dict)  # Python services
    kafka_port: int | None = None  # ethgw's broker, for what talks to Kafka directly
    metrics_urls: dict[str, str] = field(default_factory=dict)  # service name -> /metrics

    def node_pid(self, node: str) -> int | None:
        """The node's geth pid now (it changes when the node is restarted)."""
        path = self.state_dir / "cluster" / node / "geth.pid"
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def service_pids(self) -> dict[str, int]:
        """The Python services' pids, and the processes that serve them: the Kafka broker
        and the sealer (both cost CPU per request, as the services do)."""
        pids = dict(self.process_pids)
        for pid_file in (self.state_dir / "run").glob("*.pid"):
            with contextlib.suppress(ValueError):
                pids[pid_file.stem] = int(pid_file.read_text())
        for series, pid_file in (
            ("kafka", self.state_dir / "kafka" / "broker.pid"),
            ("sealer", self.state_dir / "cluster" / "sealer" / "geth.pid"),
        ):
            with contextlib.suppress(FileNotFoundError, ValueError):
                pids[series] = int(pid_file.read_text())
        return pids

    def processes(self) -> dict[str, psutil.Process]:
        """Every process of the system now, nodes and services, by series name."""
        pids = {name: self.node_pid(name) for name in self.node_names}
        pids.update(self.service_pids())
        found = {series: _process(pid) for series, pid in pids.items() if pid is not None}
        return {series: process for series, process in found.items() if process is not None}


def cluster_fields(env: Mapping[str, str]) -> dict[str, Any]:
    """ClusterSettings' field names of ETHGW_CLUSTER_ variables (one declaration of the
    allotment's settings, given to `ethgw up` as variables and to the monolith as fields)."""
    prefix = "ETHGW_CLUSTER_"
    return {name.removeprefix(prefix).lower(): value for name, value in env.items()
            if name.startswith(prefix)}  # fmt: skip


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


async def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None,
                    log: Path, headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Poll `url` until it answers 200; fail at once if the process exits."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5, trust_env=False, headers=headers) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(1.0)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s; see {log}")


def _spawn(
    args: list[str], env: Mapping[str, str], log: Path, cwd: Path = REPO_ROOT
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C hits the benchmark, which stops it in order
        )


def allotment_env(allotment: Allotment | None) -> dict[str, str]:
    """The cluster settings that confine every service node to `allotment`: its figures are
    what LBH measures the nodes against, and the limits the runtime applies (a cgroup per
    node in the process runtime, --cpus/--memory in the docker one)."""
    if allotment is None:
        return {}
    env = {
        "ETHGW_CLUSTER_NODE_CPU_CORES": str(allotment.cores),
        "ETHGW_CLUSTER_PROCESS_NODE_CGROUP": "true",
    }
    if allotment.memory_mb is not None:
        env["ETHGW_CLUSTER_NODE_MEMORY_BUDGET_MB"] = str(allotment.memory_mb)
    return env


@contextlib.asynccontextmanager
async def ethgw_system(
    state_dir: Path,
    log_dir: Path,
    nodes: int,
    strategy: str,
    node_cpu_cores: Mapping[str, float] | None = None,
    start_timeout_s: float = 300.0,
    checkout: Path = REPO_ROOT,
    allotment: Allotment | None = None,
) -> AsyncIterator[System]:
    """`ethgw up` with the benchmark's ports and state; stopped (SIGTERM) afterwards.

    `checkout`: the source tree the stack runs from (`python -m` in that folder imports
    its packages first), so two commits can be measured by the same measuring code.
    `allotment`: every service node confined to it (allotment_env)."""
    ports = free_ports()
    env = {
        **ports.env(),
        "ETHGW_STATE_DIR": str(state_dir),
        # Its own broker's files, whatever broker the calling shell names.
        "ETHGW_KAFKA_STATE_DIR": str(state_dir / "kafka"),
        # One key drives every simulated user: the per-key limits must not be the bottleneck.
        "ETHGW_GATEWAY_ADMIN_RATE_PER_S": "1000000",
        "ETHGW_GATEWAY_ADMIN_BURST": "1000000",
        "ETHGW_CLUSTER_NODE_CPU_CORES_BY_NODE": json.dumps(dict(node_cpu_cores or {})),
        **BENCH_SCRYPT_N,
        **allotment_env(allotment),
    }
    log = log_dir / f"stack-{strategy}-n{nodes}.log"
    args = [sys.executable, "-m", "ethgw.cli", "up", "--nodes", str(nodes),
            "--strategy", strategy, "--port-base", str(ports.gateway)]  # fmt: skip
    process = _spawn(args, env, log, cwd=checkout)
    try:
        url = f"http://127.0.0.1:{ports.gateway}"
        await wait_http(url + "/healthz", start_timeout_s, process, log)
        key_file = state_dir / "gateway" / "admin.key"
        key = key_file.read_text().strip()
        await wait_http(url + "/readyz", start_timeout_s, process, log, {API_KEY_HEADER: key})
        await _wait_registered(url, key, start_timeout_s)
        names = [f"node-{i + 1}" for i in range(nodes)]
        rpc = {name: f"http://127.0.0.1:{ports.rpc + i + 1}" for i, name in enumerate(names)}
        manager = f"http://127.0.0.1:{ports.manager}"
        yield System(
            f"ethgw-{strategy}",
            url,
            key,
            state_dir,
            names,
            rpc,
            manager,
            process_pids={"manager": process.pid},  # `ethgw up` runs the cluster manager
            kafka_port=ports.kafka,
            metrics_urls=_metrics_urls(Shape(nodes=nodes, strategy=strategy), ports.gateway),
        )
    finally:
        await asyncio.to_thread(terminate, process, 120.0)


def _metrics_urls(shape: Shape, gateway_port: int) -> dict[str, str]:
    """Each service's /metrics, at the ports `ethgw up --port-base` gives a stack of `shape`."""
    ports = ServicePorts.from_base(shape, gateway_port).by_service()
    return {service: f"http://127.0.0.1:{port}/metrics" for service, port in ports.items()}


async def _wait_registered(url: str, key: str, timeout_s: float) -> None:
    """Until a read and a write answer through the gateway (every instance registered)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(
        base_url=url, timeout=30, trust_env=False, headers={API_KEY_HEADER: key}
    ) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                read = await client.get("/api/v1/conn/blockNum")
                listed = await client.get("/api/v1/admin/list")
                if read.status_code == 200 and listed.status_code == 200:
                    return
            await asyncio.sleep(1.0)
    raise TimeoutError(f"{url}: the API did not answer within {timeout_s:.0f}s")


@contextlib.asynccontextmanager
async def monolith_system(
    state_dir: Path,
    log_dir: Path,
    start_timeout_s: float = 300.0,
    allotment: Allotment | None = None,
) -> AsyncIterator[System]:
    """A sealer, one service node and the monolith in front of that node; with
    `allotment`, the node confined to it as ethgw's nodes are (allotment_env)."""
    from devstack.platform_setup import ensure_platform
    from geth_cluster.cluster import GethCluster
    from geth_cluster.runtimes import make_runtime
    from geth_cluster.toolchain import geth_binary

    ports = free_ports()
    settings = ClusterSettings(
        state_dir=state_dir / "cluster",
        nodes=1,
        p2p_port_base=ports.p2p,
        rpc_port_base=ports.rpc,
        authrpc_port_base=ports.authrpc,
        **cluster_fields(allotment_env(allotment)),
    )
    cluster = GethCluster(settings, make_runtime(settings, geth_binary()))
    process: subprocess.Popen[bytes] | None = None
    try:
        await cluster.up()
        node = cluster.spec("node-1")
        platform_file = state_dir / "platform.json"
        await ensure_platform(
            node.rpc_url,
            settings.state_dir / "accounts",
            cluster.accounts.faucet,
            cluster.accounts.sealer.address,
            PlatformSettings(file=platform_file),
        )
        env = {
            "ETHGW_STATE_DIR": str(state_dir),
            "ETHGW_MONOLITH_RPC_URL": node.rpc_url,
            "ETHGW_MONOLITH_HTTP_PORT": str(ports.monolith),
            "ETHGW_MONOLITH_ACCOUNTS_DIR": str(settings.state_dir / "accounts"),
            "ETHGW_MONOLITH_PLATFORM_FILE": str(platform_file),
            **BENCH_SCRYPT_N,
        }
        log = log_dir / "monolith.log"
        process = _spawn([sys.executable, "-m", "loadtests.monolith"], env, log)
        url = f"http://127.0.0.1:{ports.monolith}"
        await wait_http(url + "/healthz", start_timeout_s, process, log)
        yield System(
            "monolith", url, "", state_dir, ["node-1"], {"node-1": node.rpc_url},
            process_pids={"monolith": process.pid},
        )  # fmt: skip
    finally:
        if process is not None:
            await asyncio.to_thread(terminate, process, 30.0)
        await cluster.down()
        await cluster.aclose()
