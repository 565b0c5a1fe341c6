"""The local stack as one unit: Kafka, the Geth cluster with its manager, the
platform token, and the services (gateway, providers, read and write instances).

`run_stack` is what `make up` runs in the foreground: it starts every part in
dependency order, prints the endpoints and the admin key, shows a progress line
while it runs and stops the parts in reverse order on Ctrl-C or SIGTERM.

It is also the one builder of a stack's parts (`Shape`, `ServicePorts`, `build_services`,
`make_cluster`): the sandbox (`devstack.sandbox`) builds its stack with them, on free ports and
a folder of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devstack.kafka_broker import KafkaBroker
from devstack.platform_setup import ensure_platform
from devstack.processes import ServiceProcess, stop_leftovers
from ethgw_wire.settings import ClusterSettings, KafkaSettings, PlatformSettings
from geth_cluster.api import serve_api
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.errors import DockerEngineError
from geth_cluster.runtimes import make_runtime, remembered_runtime
from geth_cluster.runtimes.docker import DockerRuntime
from geth_cluster.toolchain import geth_binary
from service_kit.paths import default_state_dir
from service_kit.ports import free_port

log = logging.getLogger("ethgw.stack")

# The services' ports (each instance takes the next one). Each service's own port setting moves
# its block, so a second stack can run beside one on the defaults.
GATEWAY_PORT = int(os.environ.get("ETHGW_GATEWAY_PORT", 8000))
# The other services' ports, as offsets from the gateway's (`ethgw up --port-base`
# moves them all, so a second stack, e.g. the benchmark's, runs beside the first).
READ_OFFSET = 100
WRITE_OFFSET = 150
PROVIDER_OFFSET = 200
MANAGER_STOP_S = 15.0


@dataclass(frozen=True)
class Shape:
    """How big a stack is and how its parts run: `ethgw up`'s and the sandbox's alike."""

    nodes: int = 3
    providers: int = 1
    readers: int = 2
    writers: int = 2
    strategy: str = "lbh"
    runtime: Literal["process", "docker"] | None = None  # None: ETHGW_CLUSTER_RUNTIME
    registry_ttl_s: float | None = None  # None: the services' own default


@dataclass(frozen=True)
class ServicePorts:
    """The HTTP port of every service instance of a shape."""

    gateway: int
    providers: tuple[int, ...]
    readers: tuple[int, ...]
    writers: tuple[int, ...]

    @classmethod
    def from_base(cls, shape: Shape, base: int) -> ServicePorts:
        """`ethgw up`'s ports: the gateway on `base`, each other kind at its offset from it."""
        return cls(
            base,
            tuple(base + PROVIDER_OFFSET + i for i in range(shape.providers)),
            tuple(base + READ_OFFSET + i for i in range(shape.readers)),
            tuple(base + WRITE_OFFSET + i for i in range(shape.writers)),
        )

    @classmethod
    def free(cls, shape: Shape) -> ServicePorts:
        """A free port for each instance, for a stack that must not meet another."""
        return cls(
            free_port(),
            tuple(free_port() for _ in range(shape.providers)),
            tuple(free_port() for _ in range(shape.readers)),
            tuple(free_port() for _ in range(shape.writers)),
        )


@dataclass(frozen=True)
class Services:
    """A stack's Python services, not started yet."""

    gateway: ServiceProcess
    providers: list[ServiceProcess]
    readers: list[ServiceProcess]
    writers: list[ServiceProcess]

    def in_start_order(self) -> list[ServiceProcess]:
        """The gateway first: the others register with it."""
        return [self.gateway, *self.providers, *self.readers, *self.writers]


def build_services(
    shape: Shape,
    ports: ServicePorts,
    runs: Path,
    env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
    manager_url: str | None = None,
) -> Services:
    """The services of `shape` on `ports`, logging under `runs`. `env` reaches every service
    (for example a state folder and a broker of their own); `gateway_env` the gateway alone;
    `manager_url` the providers, which then forward their strategy's recycle requests."""
    common = dict(env or {})
    ttl_s = shape.registry_ttl_s
    gateway = {
        **common,
        "ETHGW_GATEWAY_PORT": str(ports.gateway),
        **(gateway_env or {}),
        **_ttl("ETHGW_GATEWAY_", ttl_s),
    }
    providers = [
        _process(
            f"provider-{i + 1}",
            "provider",
            port,
            runs,
            {
                **common,
                "ETHGW_PROVIDER_HTTP_PORT": str(port),
                "ETHGW_PROVIDER_PROVIDER_ID": f"provider-{i + 1}",
                "ETHGW_PROVIDER_STRATEGY": shape.strategy,
                **({} if manager_url is None else {"ETHGW_PROVIDER_MANAGER_URL": manager_url}),
            },
        )
        for i, port in enumerate(ports.providers)
    ]
    gateway_url = f"http://127.0.0.1:{ports.gateway}"
    return Services(
        _process("gateway", "gateway", ports.gateway, runs, gateway),
        providers,
        _instances(
            "read", ports.readers, gateway_url, runs, {**common, **_ttl("ETHGW_READ_", ttl_s)}
        ),
        _instances(
            "write", ports.writers, gateway_url, runs, {**common, **_ttl("ETHGW_WRITE_", ttl_s)}
        ),
    )


def _ttl(prefix: str, ttl_s: float | None) -> dict[str, str]:
    """The registry TTL variable under a service's prefix; nothing when the shape sets none."""
    return {} if ttl_s is None else {f"{prefix}REGISTRY_TTL_S": str(ttl_s)}


def _instances(
    kind: str, ports: tuple[int, ...], gateway_url: str, runs: Path, env: dict[str, str]
) -> list[ServiceProcess]:
    """The read or write service instances, each registering with the gateway."""
    prefix = f"ETHGW_{kind.upper()}_"
    return [
        _process(
            f"{kind}-{i + 1}",
            f"{kind}_service",
            port,
            runs,
            {
                **env,
                f"{prefix}HTTP_PORT": str(port),
                f"{prefix}INSTANCE_ID": f"{kind}-{i + 1}",
                f"{prefix}GATEWAY_URL": gateway_url,
            },
        )
        for i, port in enumerate(ports)
    ]


def _process(name: str, module: str, port: int, runs: Path, env: dict[str, str]) -> ServiceProcess:
    return ServiceProcess(name, module, env, f"http://127.0.0.1:{port}/healthz", runs)


def make_cluster(
    nodes: int | None = None, runtime: str | None = None, **placement: Any
) -> GethCluster:
    """The cluster of the settings, on `runtime` when given, else the configured one.

    `placement` overrides more of its settings, such as a state folder and port bases."""
    overrides: dict[str, Any] = dict(placement)
    if nodes is not None:
        overrides["nodes"] = nodes
    if runtime is not None:
        overrides["runtime"] = runtime
    settings = ClusterSettings(**overrides)
    return GethCluster(settings, make_runtime(settings, geth_binary()))


def known_runtime() -> str | None:
    """The runtime the state folder's nodes were last started on (None: never started)."""
    return remembered_runtime(ClusterSettings().state_dir)


async def ensure_runtime_ready(cluster: GethCluster) -> None:
    """For the docker runtime: a running engine (installed and started when missing)."""
    if isinstance(cluster.runtime, DockerRuntime):
        from devstack.docker_engine import ensure_engine

        engine = await asyncio.to_thread(ensure_engine)
        log.info("docker engine ready started=%s seconds=%.1f", engine.started_pid, engine.seconds)


def known_nodes() -> int:
    """How many service nodes the state folder holds, so `down` stops them all."""
    settings = ClusterSettings()
    found = [p for p in settings.state_dir.glob("node-*") if p.is_dir()]
    return len(found) if found else settings.nodes


def run_dir() -> Path:
    return default_state_dir() / "run"


async def start_kafka(settings: KafkaSettings) -> KafkaBroker:
    broker = KafkaBroker(settings)
    await asyncio.to_thread(broker.start)
    await broker.ensure_topics()
    return broker


async def stop_all() -> None:
    """Stop services, the cluster, then Kafka; each is a no-op when not running."""
    stopped = await asyncio.to_thread(stop_leftovers, run_dir())
    log.info("services stopped count=%d", stopped)
    cluster = make_cluster(known_nodes(), known_runtime())
    try:
        await cluster.down()
        if isinstance(cluster.runtime, DockerRuntime):
            await cluster.runtime.remove_all()
    except DockerEngineError as error:
        # No engine, no running container: nothing of the cluster is left to stop.
        log.info("docker nodes not stopped reason=%s", error)
    finally:
        await cluster.aclose()
    await asyncio.to_thread(KafkaBroker(KafkaSettings()).stop)


def _services(shape: Shape, port_base: int = GATEWAY_PORT) -> list[ServiceProcess]:
    """`ethgw up`'s services in start order, on the ports that follow `port_base`."""
    ports = ServicePorts.from_base(shape, port_base)
    manager_url = os.environ.get(
        "ETHGW_GATEWAY_MANAGER_URL", f"http://127.0.0.1:{ManagerSettings().api_port}"
    )
    gateway_env = {
        "ETHGW_GATEWAY_MANAGER_URL": manager_url,
        # The dashboard's in-flight column sums the providers' /metrics.
        "ETHGW_GATEWAY_PROVIDER_URLS": json.dumps(
            [f"http://127.0.0.1:{port}" for port in ports.providers]
        ),
    }
    services = build_services(
        shape, ports, run_dir(), gateway_env=gateway_env, manager_url=manager_url
    )
    return services.in_start_order()


async def run_stack(
    shape: Shape, port_base: int = GATEWAY_PORT, status_every_s: float = 5.0
) -> None:
    """Start everything, report until interrupted, then stop in reverse order.

    The gateway listens on `port_base`; the other services follow it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kafka_settings = KafkaSettings()
    cluster = make_cluster(shape.nodes, shape.runtime)
    services = _services(shape, port_base)
    manager_stop = asyncio.Event()
    manager: asyncio.Task[None] | None = None
    try:
        log.info("starting kafka bootstrap=%s", kafka_settings.bootstrap_servers)
        await start_kafka(kafka_settings)
        log.info("starting cluster nodes=%d runtime=%s", shape.nodes, cluster.runtime.name)
        await ensure_runtime_ready(cluster)
        await cluster.up()
        manager = asyncio.create_task(
            serve_api(cluster, kafka_settings, ManagerSettings(), manager_stop)
        )
        log.info("deploying the platform token (once per chain)")
        await ensure_platform(
            cluster.spec("node-1").rpc_url,
            cluster.settings.state_dir / "accounts",
            cluster.accounts.faucet,
            cluster.accounts.sealer.address,
            PlatformSettings(),
        )
        await _start_services(services)
        _print_endpoints(kafka_settings, cluster, services, port_base)
        while not stop.is_set():
            if manager.done():
                raise RuntimeError("the cluster manager stopped; see the log above")
            dead = [s.name for s in services if not s.alive]
            if len(dead) == len(services):
                # `ethgw down` from another shell stops the services and Kafka under us.
                log.warning("every service has stopped (ethgw down?): stopping the rest")
                break
            heads = await cluster.heads()
            print(
                "blocks: "
                + "  ".join(f"{n}={h if h is not None else '-'}" for n, h in heads.items())
                + (f"  DEAD: {', '.join(dead)}" if dead else ""),
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
    finally:
        log.info("stopping")
        for service in reversed(services):
            await service.stop()
        manager_stop.set()
        if manager is not None:
            await _stop_manager(manager, MANAGER_STOP_S)
        await cluster.down()
        await cluster.aclose()
        await asyncio.to_thread(KafkaBroker(kafka_settings).stop)
        log.info("stopped")


async def _stop_manager(manager: asyncio.Task[None], timeout_s: float) -> None:
    """Wait for the manager's own shutdown, bounded: with Kafka already gone, its producer
    would retry its last reports for good."""
    try:
        await asyncio.wait_for(manager, timeout_s)
    except TimeoutError:
        log.warning("the cluster manager did not stop within %.0fs: cancelled", timeout_s)
    except Exception as exc:
        log.warning("the cluster manager stopped with error=%r", exc)


async def _start_services(services: list[ServiceProcess]) -> None:
    """The gateway first (the others register with it), then the rest at once: each
    spends seconds importing, which overlaps well."""
    gateway, *others = services
    await gateway.start()
    await gateway.wait_healthy()
    log.info("service up name=%s", gateway.name)
    for service in others:
        await service.start()

    async def healthy(service: ServiceProcess) -> None:
        await service.wait_healthy()
        log.info("service up name=%s", service.name)

    await asyncio.gather(*(healthy(s) for s in others))


def _print_endpoints(
    kafka: KafkaSettings, cluster: GethCluster, services: list[ServiceProcess], gateway_port: int
) -> None:
    from gateway.keys import read_admin_key

    key = read_admin_key(default_state_dir())
    print("ethgw stack is up (Ctrl-C stops it)")
    print(f"  gateway    http://127.0.0.1:{gateway_port}   (docs: /docs)")
    print(f"  admin key  {key or '(see .state/gateway/admin.key)'}")
    print(f"  dashboard  http://127.0.0.1:{gateway_port}/dashboard   (paste the admin key)")
    print(f"  manager    http://127.0.0.1:{ManagerSettings().api_port}/nodes")
    print(f"  kafka      {kafka.bootstrap_servers}")
    for spec in cluster.specs:
        print(f"  {spec.name:<10} {spec.rpc_url}")
    print(f"  logs       {run_dir()}/<service>.log  ({len(services)} services)")
