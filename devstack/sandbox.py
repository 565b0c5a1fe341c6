"""A whole stack on ports and a state folder of its own, for the fault suite and the soak.

Kafka, a Geth cluster, the platform token, the cluster manager (in this process), the
gateway, providers and read and write service instances: the same parts as `make up`, but on
free ports picked at start, with every file under one root folder, so it can be broken on
purpose (kill -9, broker restart, a node cut off) without touching anybody else's stack.
The parts are built as `ethgw up` builds them (`devstack.stack`: `Shape`, `build_services`,
`make_cluster`); only where they live differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.kafka_broker import KafkaBroker
from devstack.platform_setup import ensure_platform
from devstack.processes import ServiceProcess
from devstack.stack import (
    ServicePorts,
    Shape,
    build_services,
    make_cluster,
    manager_settings,
    side_by_side,
)
from ethgw_wire.node_reports import Lifecycle
from ethgw_wire.platform_record import PlatformRecord
from ethgw_wire.settings import KafkaSettings, PlatformSettings
from geth_cluster.calibrate import ensure_calibration
from geth_cluster.cluster import GethCluster
from geth_cluster.manager import ClusterManager, open_manager
from service_kit.ports import free_port, is_port_free

log = logging.getLogger("ethgw.sandbox")

# Below the kernel's ephemeral range (32768+) and away from the blocks the test fixtures
# pick from (Kafka 19100-20900, Geth 21000-29000), so a sandbox and a test session running
# side by side never draw the same port.
_PORT_RANGE = range(29100, 32700)


SANDBOX_SHAPE = Shape(
    providers=2,
    runtime="process",
    registry_ttl_s=3.0,  # a dead service instance leaves the gateway this fast
)
"""The sandbox's default shape: two providers, so one can be killed while the other serves."""


def free_block(size: int) -> int:
    """A base port from which `size` consecutive ports are free, tried in a random order."""
    bases = list(range(_PORT_RANGE.start, _PORT_RANGE.stop - size, size))
    for base in random.sample(bases, len(bases)):
        if all(is_port_free(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no {size} free consecutive ports in {_PORT_RANGE}")


def _cluster_placement(state_dir: Path, nodes: int) -> dict[str, Any]:
    """The cluster's folder and a free block of ports for its nodes (and the sealer)."""
    base = free_block(3 * (nodes + 1))
    return {
        "state_dir": state_dir,
        "p2p_port_base": base,
        "rpc_port_base": base + nodes + 1,
        "authrpc_port_base": base + 2 * (nodes + 1),
    }


def _kafka_settings(state_dir: Path) -> KafkaSettings:
    port = free_block(2)
    # heap: enough here, and leaves memory for the Geth nodes sharing the machine.
    return KafkaSettings(port=port, controller_port=port + 1, state_dir=state_dir, heap_mb=384)


@dataclass
class Sandbox:
    """The stack's parts once started; `open_sandbox` builds it."""

    root: Path
    shape: Shape
    kafka: KafkaBroker
    cluster: GethCluster
    admin_key: str
    gateway: ServiceProcess
    providers: list[ServiceProcess]
    readers: list[ServiceProcess]
    writers: list[ServiceProcess]
    platform: PlatformRecord | None = None
    manager: ClusterManager | None = None

    @property
    def api(self) -> str:
        return f"{self.gateway_url}/api/v1"

    @property
    def gateway_url(self) -> str:
        return self.gateway.health_url.removesuffix("/healthz")

    @property
    def kafka_settings(self) -> KafkaSettings:
        return self.kafka.settings

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.gateway, *self.providers, *self.readers, *self.writers]

    def pids(self) -> dict[str, int]:
        """The pid of every Python service process that is running."""
        return {s.name: s.pid for s in self.services if s.pid is not None}

    async def start_service(self, service: ServiceProcess, marker: str | None = None) -> None:
        """(Re)start one service and wait until it is healthy (and its log shows `marker`)."""
        await service.start()
        await service.wait_healthy()
        if marker is not None:
            await wait_for_log(service, marker)

    async def restart_kafka(self) -> None:
        """Stop the broker cleanly and start it again on the same ports and log."""
        await asyncio.to_thread(self.kafka.stop)
        await asyncio.to_thread(self.kafka.start)

    async def is_whole(self) -> bool:
        """Every service running, every node UP for the manager, and the gateway seeing
        every read and write instance: the shape the sandbox started with."""
        if not all(s.alive for s in self.services):
            return False
        if self.manager is None:
            return False
        if any(n.lifecycle is not Lifecycle.UP for n in self.manager.snapshot().nodes):
            return False
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            try:
                response = await client.get(f"{self.gateway_url}/readyz")
            except httpx.HTTPError:
                return False
        if response.status_code != 200:
            return False
        wanted = {"read": len(self.readers), "write": len(self.writers)}
        return bool(response.json()["data"]["healthy_instances"] == wanted)

    async def wait_gateway_ready(self, timeout_s: float = 60.0) -> None:
        """Until the gateway's /readyz says it has instances of both kinds."""
        await _poll_ok(f"{self.gateway_url}/readyz", timeout_s)


async def wait_for_log(service: ServiceProcess, marker: str, timeout_s: float = 60.0) -> None:
    """Until `marker` appears in the service's log after its latest start."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if marker in service.log_since_start():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{service.name}: no {marker!r} in its log after {timeout_s:.0f}s")


async def _poll_ok(url: str, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s")


PROVIDER_READY = "partitions assigned"


@contextlib.asynccontextmanager
async def open_sandbox(
    root: Path, shape: Shape = SANDBOX_SHAPE, calibrate: bool = False
) -> AsyncIterator[Sandbox]:
    """Start every part once what it needs runs; on exit stop the services (all at once),
    then the manager, the nodes and the broker.

    calibrate: False (the default) keeps the manager and the providers on the configured
    bounds (ETHGW_LBH_DIS_AVEMIN / _DIS_AVEMAX, by default 0.1 and 1.0): a sandbox's folder is
    new each time, so measuring would add about 23 s of full load to every start. True
    measures them as `ethgw up` does, into the sandbox's own calibration.json."""
    from gateway.keys import create_key

    state = root / "state"
    calibration_file = state / "calibration.json" if calibrate else None
    kafka = KafkaBroker(_kafka_settings(state / "kafka"))
    cluster = make_cluster(
        shape.nodes, shape.runtime, **_cluster_placement(state / "cluster", shape.nodes)
    )
    ks = kafka.settings
    env = {
        "ETHGW_STATE_DIR": str(state),
        "ETHGW_SEALING_DIR": str(state / "sealing"),
        "ETHGW_KAFKA_HOST": ks.host,
        "ETHGW_KAFKA_PORT": str(ks.port),
        "ETHGW_KAFKA_CONTROLLER_PORT": str(ks.controller_port),
        "ETHGW_KAFKA_STATE_DIR": str(ks.state_dir),
    }
    ports = ServicePorts.free(shape)
    services = build_services(shape, ports, root / "run", env, calibration_file=calibration_file)
    state.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(
        root,
        shape,
        kafka,
        cluster,
        create_key(state, "sandbox-admin", "admin"),
        services.gateway,
        services.providers,
        services.readers,
        services.writers,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(asyncio.to_thread, kafka.stop)
        stack.push_async_callback(cluster.aclose)
        stack.push_async_callback(cluster.down)
        # Neither needs the other: the broker starts while the nodes find their peers.
        await side_by_side(_start_kafka(kafka), cluster.up())
        record = await ensure_platform(
            cluster.spec("node-1").rpc_url,
            cluster.settings.state_dir / "accounts",
            cluster.accounts.faucet,
            cluster.accounts.sealer.address,
            PlatformSettings(file=state / "platform.json"),
        )
        sandbox.platform = record
        if calibration_file is not None:
            ensured = await ensure_calibration(cluster, calibration_file)
            log.info("sandbox bounds %s", ensured.describe())
        # No automatic recycling and no self-healing: a scenario's own fault is the only
        # disturbance, and the fault tests start a killed node again themselves.
        settings = manager_settings(
            ports, calibration_file, recycle=False, heal=False, api_port=free_port()
        )
        sandbox.manager = await stack.enter_async_context(open_manager(cluster, ks, settings))
        stack.push_async_callback(_stop_services, sandbox)
        # All at once: each spends seconds importing, and an instance registers with the
        # gateway at its next heartbeat when the gateway was not up yet.
        await asyncio.gather(
            sandbox.start_service(sandbox.gateway),
            *(sandbox.start_service(p, PROVIDER_READY) for p in sandbox.providers),
            *(sandbox.start_service(s) for s in [*sandbox.readers, *sandbox.writers]),
        )
        await sandbox.wait_gateway_ready()
        log.info("sandbox up root=%s gateway=%s", root, sandbox.gateway_url)
        yield sandbox


async def _start_kafka(kafka: KafkaBroker) -> None:
    await asyncio.to_thread(kafka.start)
    await kafka.ensure_topics()


async def _stop_services(sandbox: Sandbox) -> None:
    """Every service at once: their drains overlap. One failing stop must not leave the
    rest running."""
    services = sandbox.services
    stopped = await asyncio.gather(*(s.stop() for s in services), return_exceptions=True)
    for service, error in zip(services, stopped, strict=True):
        if isinstance(error, BaseException):
            log.warning("stop failed service=%s error=%r", service.name, error)


def kill_node(cluster: GethCluster, name: str) -> int:
    """kill -9 of one Geth node's process; returns the pid it had."""
    pid = cluster.runtime.pid(cluster.spec(name))
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    os.kill(pid, signal.SIGKILL)
    return pid
