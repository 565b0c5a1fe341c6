"""The local stack as one unit: Kafka, the Geth cluster with its manager, the
platform token, and the services (gateway, providers, read and write instances).

`run_stack` is what `make up` runs in the foreground: it starts every part once what it
needs runs (Kafka and the Geth cluster side by side), prints the endpoints and the admin
key, shows a progress line while it runs and stops the parts in reverse order on Ctrl-C or
SIGTERM. While it runs, a `Supervisor` starts again any service, or the Kafka broker, that
dies (compose's `restart: unless-stopped`); `ethgw down` asks it to stop (SIGTERM) before it
stops what is left, so nothing it stops is started again.

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
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import psutil

from balancer import DEFAULT_STRATEGY
from devstack import port_plan
from devstack.errors import StackError
from devstack.interrupt import interruption
from devstack.kafka_broker import KafkaBroker
from devstack.platform_setup import ensure_platform
from devstack.port_plan import PROVIDER_OFFSET, READ_OFFSET, WRITE_OFFSET
from devstack.processes import (
    BrokerProcess,
    ServiceProcess,
    Supervisor,
    stop_leftovers,
)
from ethgw_wire.settings import (
    ClusterSettings,
    KafkaSettings,
    PlatformSettings,
    default_calibration_file,
)
from gateway.config import GatewaySettings
from geth_cluster.api import serve_api
from geth_cluster.calibrate import ensure_calibration
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.errors import DockerEngineError
from geth_cluster.runtimes import make_runtime, remembered_runtime
from geth_cluster.runtimes.docker import DockerRuntime
from geth_cluster.toolchain import geth_binary
from service_kit.paths import default_state_dir
from service_kit.ports import ensure_port_free, free_port

log = logging.getLogger("ethgw.stack")

T = TypeVar("T")
U = TypeVar("U")

MANAGER_STOP_S = 15.0
# The variable the manager and the providers read their bounds file from (`lbh_setting`).
CALIBRATION_FILE_ENV = "ETHGW_LBH_CALIBRATION_FILE"
# `ethgw down` waits this long for a running `ethgw up` to stop everything in order (the
# services' drains, the manager's 15 s, the nodes, Kafka's clean shutdown).
UP_STOP_S = 120.0


@dataclass(frozen=True)
class Shape:
    """How big a stack is and how its parts run: `ethgw up`'s and the sandbox's alike."""

    nodes: int = 3
    providers: int = port_plan.PROVIDERS
    readers: int = port_plan.READERS
    writers: int = port_plan.WRITERS
    strategy: str = DEFAULT_STRATEGY
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

    def by_service(self) -> dict[str, int]:
        """Each instance's port, under the name `build_services` gives it."""
        return {
            "gateway": self.gateway,
            **{f"provider-{i + 1}": port for i, port in enumerate(self.providers)},
            **{f"read-{i + 1}": port for i, port in enumerate(self.readers)},
            **{f"write-{i + 1}": port for i, port in enumerate(self.writers)},
        }

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
    calibration_file: Path | None = None,
    manager_url: str | None = None,
) -> Services:
    """The services of `shape` on `ports`, logging under `runs`. `env` reaches every service
    (for example a state folder and a broker of their own); `gateway_env` the gateway alone.
    `calibration_file`: the LBH bounds file the providers read, the one the stack's manager
    is given (`manager_settings`); None leaves them on the configured bounds. `manager_url`:
    the providers forward their strategy's recycle requests there."""
    common = dict(env or {})
    bounds = {} if calibration_file is None else {CALIBRATION_FILE_ENV: str(calibration_file)}
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
                **bounds,
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


async def start_cluster(cluster: GethCluster) -> None:
    await ensure_runtime_ready(cluster)
    await cluster.up()


async def side_by_side(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Run two independent steps at once and wait for both, then raise the first one's
    error, if any: neither is still running when the caller cleans up after a failure."""
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in (one, two):
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(T, one), cast(U, two)


def up_pid_path() -> Path:
    """Names the running `ethgw up` (pid and start time), so `ethgw down` can ask it to stop."""
    return default_state_dir() / "up.pid"


def _announce(path: Path) -> None:
    """`path` names this process: its pid and its start time."""
    me = psutil.Process()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{me.pid} {me.create_time()}\n")


def stop_running_up(path: Path, timeout_s: float = UP_STOP_S) -> bool:
    """SIGTERM to the `ethgw up` that `path` names, then wait for its orderly stop: its
    supervisor must not start again what `ethgw down` stops. False when none runs."""
    try:
        pid, created = path.read_text().split()
        process = psutil.Process(int(pid))
        # The start time guards against a recycled pid.
        if abs(process.create_time() - float(created)) > 0.01:
            return False
        process.terminate()
    except (OSError, ValueError, psutil.Error):
        return False
    if not _ended_within(process, timeout_s):
        log.warning("ethgw up still running after %.0fs: stopping the rest", timeout_s)
    return True


def _ended_within(process: psutil.Process, timeout_s: float) -> bool:
    """Whether `process` ended within `timeout_s`. Ended includes a zombie: `ethgw up` is
    not our child, and its parent (a shell, a test) may not have reaped it yet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


async def stop_all() -> None:
    """Stop a running `ethgw up`, then services, the cluster and Kafka it left; each is a
    no-op when not running."""
    if await asyncio.to_thread(stop_running_up, up_pid_path()):
        log.info("ethgw up stopped")
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


def ensure_ports_free(ports: ServicePorts, manager_port: int) -> None:
    """Refuse to start when a port the stack's services or manager would listen on is
    taken, before anything is started (PortInUseError names the port and its setting)."""
    for name, port in ports.by_service().items():
        ensure_port_free(port, f"{name}, from --port-base {ports.gateway}")
    ensure_port_free(manager_port, "ETHGW_MANAGER_API_PORT")


def provider_urls(ports: ServicePorts) -> list[str]:
    """The providers' base URLs: the gateway's in-flight column and the manager's drain read
    their /metrics."""
    return [f"http://127.0.0.1:{port}" for port in ports.providers]


def manager_settings(
    ports: ServicePorts, calibration_file: Path | None = None, **overrides: Any
) -> ManagerSettings:
    """The manager's settings for a stack on `ports`: its drain waits for the providers'
    tasks in flight unless ETHGW_MANAGER_PROVIDER_URLS says otherwise. `calibration_file`:
    the bounds file given to the providers too (`build_services`); None leaves it configured."""
    if calibration_file is not None:
        overrides["calibration_file"] = calibration_file
    if "ETHGW_MANAGER_PROVIDER_URLS" not in os.environ:
        overrides.setdefault("provider_urls", tuple(provider_urls(ports)))
    return ManagerSettings(**overrides)


def default_port_base() -> int:
    """The gateway's configured port (ETHGW_GATEWAY_PORT, else 8000): `ethgw up`'s base."""
    return GatewaySettings().port


def _services(
    shape: Shape, port_base: int | None = None, calibration_file: Path | None = None
) -> list[ServiceProcess]:
    """`ethgw up`'s services in start order, on the ports that follow `port_base` (None:
    `default_port_base()`)."""
    ports = ServicePorts.from_base(shape, port_base or default_port_base())
    manager_url = os.environ.get(
        "ETHGW_GATEWAY_MANAGER_URL", f"http://127.0.0.1:{ManagerSettings().api_port}"
    )
    gateway_env = {
        "ETHGW_GATEWAY_MANAGER_URL": manager_url,
        "ETHGW_GATEWAY_PROVIDER_URLS": json.dumps(provider_urls(ports)),
    }
    built = build_services(
        shape,
        ports,
        run_dir(),
        gateway_env=gateway_env,
        calibration_file=calibration_file,
        manager_url=manager_url,
    )
    return built.in_start_order()


async def run_stack(
    shape: Shape, port_base: int | None = None, status_every_s: float = 5.0
) -> None:
    """Start everything, report until interrupted, then stop in reverse order and raise
    the interruption (`devstack.interrupt`: Terminated after SIGTERM, KeyboardInterrupt
    after Ctrl-C).

    The gateway listens on `port_base` (None: `default_port_base()`); the other services
    follow it."""
    port_base = port_base or default_port_base()
    stop = asyncio.Event()
    stopped_by: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        stopped_by.append(sig)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    kafka_settings = KafkaSettings()
    cluster = make_cluster(shape.nodes, shape.runtime)
    # One file for the manager and every provider: the bounds measured for this shape.
    calibration_file = default_calibration_file()
    services = _services(shape, port_base, calibration_file)
    ports = ServicePorts.from_base(shape, port_base)
    ensure_ports_free(ports, ManagerSettings().api_port)
    manager_stop = asyncio.Event()
    manager: asyncio.Task[None] | None = None
    broker = KafkaBroker(kafka_settings)
    supervisor: Supervisor | None = None
    try:
        _announce(up_pid_path())
        log.info("starting kafka bootstrap=%s", kafka_settings.bootstrap_servers)
        log.info("starting cluster nodes=%d runtime=%s", shape.nodes, cluster.runtime.name)
        # Neither needs the other: the broker starts while the nodes find their peers.
        broker, _ = await side_by_side(start_kafka(kafka_settings), start_cluster(cluster))
        calibration = await ensure_calibration(cluster, calibration_file, _show_progress)
        print(f"LBH bounds: {calibration.describe()}", flush=True)
        manager = asyncio.create_task(
            serve_api(
                cluster,
                kafka_settings,
                manager_settings(ports, calibration_file),
                manager_stop,
            )
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
        supervisor = Supervisor([BrokerProcess(broker), *services])
        supervisor.start()
        while not stop.is_set():
            if manager.done():
                raise StackError("the cluster manager stopped; see the log above")
            print(_status_line(await cluster.heads(), supervisor), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
    finally:
        log.info("stopping")
        if supervisor is not None:
            await supervisor.stop()
        for service in reversed(services):
            await service.stop()
        manager_stop.set()
        if manager is not None:
            await _stop_manager(manager, MANAGER_STOP_S)
        await cluster.down()
        await cluster.aclose()
        await asyncio.to_thread(broker.stop)
        up_pid_path().unlink(missing_ok=True)
        log.info("stopped")
    if stopped_by:
        raise interruption(stopped_by[0])


def _show_progress(window: str, done_s: float, total_s: float) -> None:
    """The calibration's progress: one line rewritten in place on a terminal."""
    end = "\r" if sys.stdout.isatty() else "\n"
    print(f"calibrating: {window} {done_s:.0f}/{total_s:.0f} s   ", end=end, flush=True)


def _status_line(heads: Mapping[str, int | None], supervisor: Supervisor) -> str:
    """Each node's head, then each process that was restarted or is down."""
    blocks = "  ".join(f"{n}={h if h is not None else '-'}" for n, h in heads.items())
    return "  ".join(["blocks: " + blocks, *supervisor.status()])


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
    manager_port = ManagerSettings().api_port
    print(f"  manager    http://127.0.0.1:{manager_port}   (signed calls only: /admin/cluster)")
    print(
        f"  kafka      {kafka.bootstrap_servers}   (SASL/SCRAM-SHA-512, user {kafka.username},"
        f" password in {kafka.platform_password_path})"
    )
    for spec in cluster.specs:
        print(f"  {spec.name:<10} {spec.rpc_url}")
    print(f"  logs       {run_dir()}/<service>.log  ({len(services)} services)")
