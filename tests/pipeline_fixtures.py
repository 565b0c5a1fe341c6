"""Session fixtures of the task pipeline: the platform on the test chain, node
states on Kafka, provider processes, and a client that submits tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from devstack.platform_setup import ensure_platform
from ethgw_wire.kafka import client_options, kafka_producer, publish
from ethgw_wire.messages import ResultMessage
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import new_task
from ethgw_wire.platform_record import PlatformRecord
from ethgw_wire.settings import KafkaSettings, PlatformSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import pool_specs
from service_kit.ports import free_port

IDLE = 0.1  # memory and CPU ratio of a fed node: zone I with the default calibration
# The session pipeline's node states are fed by the tests, on a topic of their own,
# so they never mix with what the real cluster manager publishes in its own tests.
PIPELINE_NODE_STATES = "ethgw.test.pipeline.node-states"


async def create_topics(settings: KafkaSettings, partitions: Mapping[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, count, 1) for name, count in partitions.items()])
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def platform(
    geth_cluster: GethCluster, tmp_path_factory: pytest.TempPathFactory
) -> PlatformRecord:
    """The token deployed by a fresh admin account on the test chain."""
    settings = PlatformSettings(file=tmp_path_factory.mktemp("platform") / "platform.json")
    return await ensure_platform(
        geth_cluster.spec("node-1").rpc_url,
        geth_cluster.settings.state_dir / "accounts",
        geth_cluster.accounts.faucet,
        geth_cluster.accounts.sealer.address,
        settings,
    )


def idle_reports(cluster: GethCluster) -> list[NodeReport]:
    return [
        NodeReport(node_id=s.name, rpc_url=s.rpc_url, memory=IDLE, cpu=IDLE, free_memory_mb=900)
        for s in pool_specs(cluster.settings)
    ]


async def publish_reports(settings: KafkaSettings, topic: str, reports: list[NodeReport]) -> None:
    async with kafka_producer(settings) as producer:
        for report in reports:
            fresh = report.model_copy(update={"sampled_at": time.time()})
            await publish(producer, topic, fresh, key=report.node_id)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def node_state_feed(
    kafka_broker: KafkaBroker, geth_cluster: GethCluster
) -> AsyncIterator[None]:
    """Idle node states for every pool node, refreshed every second."""
    settings = KafkaSettings(topic_node_states=PIPELINE_NODE_STATES)
    await create_topics(settings, {PIPELINE_NODE_STATES: 1})

    async def feed() -> None:
        async with kafka_producer(settings) as producer:
            while True:
                for report in idle_reports(geth_cluster):
                    fresh = report.model_copy(update={"sampled_at": time.time()})
                    await publish(producer, settings.topic_node_states, fresh, key=fresh.node_id)
                await asyncio.sleep(1.0)

    task = asyncio.create_task(feed())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class ServerProcess:
    """One `python -m <module>` server with its own HTTP port and log file."""

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        log_dir: Path,
        name: str,
        port_variable: str,
        ready_marker: str | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self._ready_marker = ready_marker
        self._env = {**os.environ, **env, port_variable: str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout_s: float = 60.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(self.url + path)
                    marker_seen = self._ready_marker is None or self._ready_marker in self.log()
                    if response.status_code == 200 and marker_seen:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no drain, no commit; what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: Iterable[ServerProcess]) -> None:
    """SIGTERM to every process first, then wait for each (SIGKILL after 30 s): their drains
    and a provider group's rebalances run at once, not one after the other."""
    signalled = [p.process for p in processes if p.process is not None and p.process.poll() is None]
    for process in signalled:
        process.send_signal(signal.SIGTERM)
    for process in signalled:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class ProviderProcess(ServerProcess):
    """One provider; ready once its node view has a routable node and it owns partitions."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, name: str) -> None:
        super().__init__(
            "provider",
            {**env, "ETHGW_PROVIDER_PROVIDER_ID": name},
            log_dir,
            name,
            "ETHGW_PROVIDER_HTTP_PORT",
            ready_marker="partitions assigned",
        )


# The scrypt cost of the accounts the tests make through a provider (hundreds in a run):
# geth's light 2^12, not the standard 2^18 (half a second of a core each).
TEST_SCRYPT_N = 2**12


def provider_env(cluster: GethCluster, platform_file: Path, **extra: str) -> dict[str, str]:
    env = {
        "ETHGW_KEYSTORE_SCRYPT_N": str(TEST_SCRYPT_N),
        "ETHGW_KAFKA_TOPIC_NODE_STATES": PIPELINE_NODE_STATES,
        "ETHGW_PROVIDER_ACCOUNTS_DIR": str(cluster.settings.state_dir / "accounts"),
        "ETHGW_PROVIDER_PLATFORM_FILE": str(platform_file),
    }
    env.update(extra)
    return env


# What a user key may do with accounts on the session provider: small enough for a test to
# reach each limit with a few accounts. Admin keys and tasks without a caller have none.
SESSION_ACCOUNT_LIMITS = {
    "ETHGW_PROVIDER_ACCOUNTS_PER_KEY": "3",
    "ETHGW_PROVIDER_FAUCET_WEI_PER_KEY": str(2 * 10**18),  # two accounts' funding
    "ETHGW_PROVIDER_UNLOCK_FAILURES_PER_ACCOUNT": "2",
    "ETHGW_PROVIDER_UNLOCK_FAILURES_PER_KEY": "3",
    "ETHGW_PROVIDER_UNLOCK_FAILURE_WINDOW_S": "600",
}


@pytest.fixture(scope="session")
def provider_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("provider-logs")


@pytest.fixture(scope="session")
def platform_file(platform: PlatformRecord, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.getbasetemp() / "platform.json"
    path.write_text(platform.model_dump_json())
    return path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def provider(
    geth_cluster: GethCluster,
    kafka_broker: KafkaBroker,
    node_state_feed: None,
    platform_file: Path,
    provider_log_dir: Path,
) -> AsyncIterator[ProviderProcess]:
    """One provider of the default group, running for the session, with small account
    limits for user keys (tests/front_door/test_accounts.py reaches them)."""
    env = provider_env(geth_cluster, platform_file, **SESSION_ACCOUNT_LIMITS)
    process = ProviderProcess(env, provider_log_dir, "p1")
    async with running(process):
        yield process


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tasks(kafka_broker: KafkaBroker) -> AsyncIterator[TaskClient]:
    """Submits tasks to the default topics and waits for their results."""
    async with task_client_for(KafkaSettings()) as client:
        yield client


RESULT_TIMEOUT_S = 60.0


async def run_task(client: TaskClient, operation: str, **params: object) -> ResultMessage:
    """Submit one validated task and return its result (fails the test when none comes)."""
    result = await client.run(new_task(operation, params), RESULT_TIMEOUT_S)
    assert result is not None, f"{operation}: no result in {RESULT_TIMEOUT_S}s"
    return result


class IsolatedPipeline:
    """Providers on topics and a group of their own, for tests that disturb them."""

    def __init__(
        self,
        name: str,
        cluster: GethCluster,
        platform_file: Path,
        log_dir: Path,
        write_partitions: int = 1,
        **provider_env_extra: str,
    ) -> None:
        base = KafkaSettings()
        self.settings = base.model_copy(
            update={
                "topic_read": f"ethgw.test.{name}.read",
                "topic_write": f"ethgw.test.{name}.write",
                "topic_results": f"ethgw.test.{name}.results",
                "topic_node_states": f"ethgw.test.{name}.node-states",
                "task_partitions": 2,
                "result_partitions": 2,
            }
        )
        self.write_partitions = write_partitions
        self.env = provider_env(
            cluster,
            platform_file,
            ETHGW_KAFKA_TOPIC_READ=self.settings.topic_read,
            ETHGW_KAFKA_TOPIC_WRITE=self.settings.topic_write,
            ETHGW_KAFKA_TOPIC_RESULTS=self.settings.topic_results,
            ETHGW_KAFKA_TOPIC_NODE_STATES=self.settings.topic_node_states,
            ETHGW_PROVIDER_GROUP_ID=f"ethgw.test.{name}-providers",
            **provider_env_extra,
        )
        self.log_dir = log_dir
        self.name = name
        self.providers: list[ProviderProcess] = []

    async def create_topics(self) -> None:
        await create_topics(
            self.settings,
            {
                self.settings.topic_read: 2,
                self.settings.topic_write: self.write_partitions,
                self.settings.topic_results: 2,
                self.settings.topic_node_states: 1,
            },
        )

    async def start_provider(self, name: str) -> ProviderProcess:
        process = ProviderProcess(self.env, self.log_dir, f"{self.name}-{name}")
        process.start()
        self.providers.append(process)
        await process.wait_ready()
        return process

    def stop(self) -> None:
        stop_all(self.providers)

    async def publish_states(self, reports: list[NodeReport]) -> None:
        await publish_reports(self.settings, self.settings.topic_node_states, reports)


@contextlib.asynccontextmanager
async def task_client_for(settings: KafkaSettings) -> AsyncIterator[TaskClient]:
    async with kafka_producer(settings) as producer:
        client = TaskClient(settings, producer)
        await client.start()
        try:
            yield client
        finally:
            await client.stop()


def service_process(
    kind: str, log_dir: Path, name: str, state_dir: Path | None = None, **env: str
) -> ServerProcess:
    prefix = "ETHGW_READ_" if kind == "read" else "ETHGW_WRITE_"
    settings_env = {f"{prefix}{key.upper()}": value for key, value in env.items()}
    settings_env["ETHGW_KAFKA_TOPIC_NODE_STATES"] = PIPELINE_NODE_STATES
    if state_dir is not None:  # where the gateway's registry token is
        settings_env["ETHGW_STATE_DIR"] = str(state_dir)
    return ServerProcess(f"{kind}_service", settings_env, log_dir, name, f"{prefix}HTTP_PORT")


@contextlib.asynccontextmanager
async def running(process: ServerProcess) -> AsyncIterator[ServerProcess]:
    """The process started and ready for the block, stopped after it."""
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def read_service(
    provider: ProviderProcess, provider_log_dir: Path
) -> AsyncIterator[ServerProcess]:
    """A read service instance on the session's pipeline (not registered anywhere)."""
    async with running(service_process("read", provider_log_dir, "read-1")) as process:
        yield process


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def write_service(
    provider: ProviderProcess, provider_log_dir: Path
) -> AsyncIterator[ServerProcess]:
    """A write service instance on the session's pipeline (not registered anywhere)."""
    async with running(service_process("write", provider_log_dir, "write-1")) as process:
        yield process


@dataclass
class Stack:
    """The front door on the session's pipeline: a gateway with registered instances."""

    gateway: ServerProcess
    readers: list[ServerProcess]
    writers: list[ServerProcess]
    admin_key: str
    user_key: str
    state_dir: Path  # the gateway's: its keys file is <state_dir>/gateway/api-keys.json

    @property
    def api(self) -> str:
        return f"{self.gateway.url}/api/v1"

    async def new_user_key(self, name: str) -> str:
        """A new user key, once the gateway accepts it (it reloads its keys every 2 s)."""
        from gateway.keys import create_key

        key = create_key(self.state_dir, name, "user")
        async with httpx.AsyncClient(base_url=self.api, headers={"X-API-Key": key}) as client:
            for _ in range(100):
                if (await client.get("/conn/blockNum")).status_code != 401:
                    return key
                await asyncio.sleep(0.1)
        raise TimeoutError(f"the gateway did not take the key {name}")


def cluster_env(cluster: GethCluster) -> dict[str, str]:
    """ETHGW_CLUSTER_* variables that describe the session cluster to another process."""
    s = cluster.settings
    return {
        "ETHGW_CLUSTER_STATE_DIR": str(s.state_dir),
        "ETHGW_CLUSTER_NODES": str(s.nodes),
        "ETHGW_CLUSTER_P2P_PORT_BASE": str(s.p2p_port_base),
        "ETHGW_CLUSTER_RPC_PORT_BASE": str(s.rpc_port_base),
        "ETHGW_CLUSTER_AUTHRPC_PORT_BASE": str(s.authrpc_port_base),
    }


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def manager_api(
    geth_cluster: GethCluster, provider_log_dir: Path
) -> AsyncIterator[ServerProcess]:
    """The cluster manager's operator API (`python -m geth_cluster.api`) on the session
    cluster, for the front door's operator routes. It publishes nothing and recycles
    nothing, so the session pipeline's routing stays what the tests feed it."""
    process = ServerProcess(
        "geth_cluster.api",
        {
            **cluster_env(geth_cluster),
            "ETHGW_MANAGER_PUBLISH": "false",
            "ETHGW_MANAGER_RECYCLE": "false",
        },
        provider_log_dir,
        "manager-api",
        "ETHGW_MANAGER_API_PORT",
    )
    process.start()
    try:
        await process.wait_ready(path="/healthz")
        yield process
    finally:
        process.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(
    provider: ProviderProcess,
    manager_api: ServerProcess,
    provider_log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A gateway (its operator routes on the session cluster's manager) and two read and
    two write instances registered with it."""
    from gateway.keys import create_key

    state = tmp_path_factory.mktemp("front-door-state")
    admin_key = create_key(state, "test-admin", "admin")
    user_key = create_key(state, "test-user", "user")
    gateway = ServerProcess(
        "gateway",
        {"ETHGW_GATEWAY_STATE_DIR": str(state), "ETHGW_GATEWAY_MANAGER_URL": manager_api.url},
        provider_log_dir,
        "gateway",
        "ETHGW_GATEWAY_PORT",
    )

    def instance(kind: str, number: int) -> ServerProcess:
        return service_process(
            kind,
            provider_log_dir,
            f"gw-{kind}-{number}",
            state,
            instance_id=f"{kind}-{number}",
            gateway_url=gateway.url,
            registry_ttl_s="3",
        )

    readers = [instance("read", 1), instance("read", 2)]
    writers = [instance("write", 1), instance("write", 2)]
    processes = [gateway, *readers, *writers]
    try:
        # Started together: an instance registers at its next heartbeat once the gateway is up.
        for process in processes:
            process.start()
        await asyncio.gather(
            gateway.wait_ready(path="/healthz"), *(p.wait_ready() for p in [*readers, *writers])
        )
        await gateway.wait_ready(path="/readyz")
        yield Stack(gateway, readers, writers, admin_key, user_key, state)
    finally:
        stop_all(processes)


@contextlib.asynccontextmanager
async def fresh_states(
    pipeline: IsolatedPipeline, reports: Callable[[], list[NodeReport]], every_s: float = 1.0
) -> AsyncIterator[None]:
    """Publish `reports()` to the pipeline's node states now and every `every_s` while the
    block runs, so its provider never sees a report older than node_stale_s."""

    async def feed() -> None:
        while True:
            await pipeline.publish_states(reports())
            await asyncio.sleep(every_s)

    feeder = asyncio.create_task(feed())
    try:
        yield
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


class SteeredStates:
    """Node states a test changes while `fresh_states(pipeline, steered.current)` republishes
    them. `apply` returns once the new states are on the topic after every older publication,
    so a feeder's publication of the old states, in flight when they changed, cannot land last.
    """

    def __init__(self, reports: list[NodeReport]) -> None:
        self._reports = reports
        self._generation = 0
        self._fed_generations: list[int] = []
        self._fed = asyncio.Event()

    def current(self) -> list[NodeReport]:
        """The reports to publish now (the feeder's callable)."""
        self._fed_generations.append(self._generation)
        self._fed.set()
        return self._reports

    async def apply(self, reports: list[NodeReport], settle_s: float = 0.5) -> None:
        """Publish `reports` through the feeder; back once they are the topic's latest and the
        provider had `settle_s` to read them."""
        self._generation += 1
        self._reports = reports
        generation = self._generation
        # The feeder publishes one list at a time: the second list it takes after the change
        # is taken only once the first, already the new one, is on the topic.
        while sum(fed >= generation for fed in self._fed_generations) < 2:
            self._fed.clear()
            await self._fed.wait()
        await asyncio.sleep(settle_s)


@contextlib.asynccontextmanager
async def isolated_provider(
    name: str,
    cluster: GethCluster,
    platform_file: Path,
    log_dir: Path,
    initial: list[NodeReport],
    **env: str,
) -> AsyncIterator[tuple[IsolatedPipeline, TaskClient, SteeredStates]]:
    """A provider on topics of its own, its node states steered by the test from `initial`."""
    pipeline = IsolatedPipeline(name, cluster, platform_file, log_dir, 1, **env)
    await pipeline.create_topics()
    steered = SteeredStates(initial)
    try:
        async with fresh_states(pipeline, steered.current):
            await pipeline.start_provider("p")
            async with task_client_for(pipeline.settings) as client:
                yield pipeline, client, steered
    finally:
        pipeline.stop()


async def start_front_door(
    pipeline: IsolatedPipeline, state: Path, log_dir: Path, name: str, **gateway_env: str
) -> list[ServerProcess]:
    """A gateway, then a read and a write instance of the pipeline registered with it (the
    gateway first); the caller stops them."""
    gateway = ServerProcess(
        "gateway",
        {"ETHGW_GATEWAY_STATE_DIR": str(state), **gateway_env},
        log_dir,
        f"{name}-gateway",
        "ETHGW_GATEWAY_PORT",
    )
    gateway.start()
    processes = [gateway]
    await gateway.wait_ready(path="/healthz")
    for kind in ("read", "write"):
        prefix = f"ETHGW_{kind.upper()}_"
        instance = ServerProcess(
            f"{kind}_service",
            {
                **pipeline.env,
                "ETHGW_STATE_DIR": str(state),
                f"{prefix}INSTANCE_ID": f"{name}-{kind}",
                f"{prefix}GATEWAY_URL": gateway.url,
                f"{prefix}REGISTRY_TTL_S": "3",
            },
            log_dir,
            f"{name}-{kind}",
            f"{prefix}HTTP_PORT",
        )
        instance.start()
        processes.append(instance)
    # Started together, as the session stack's instances are: neither waits for the other.
    await asyncio.gather(*(instance.wait_ready() for instance in processes[1:]))
    await gateway.wait_ready(path="/readyz")
    return processes


async def start_front_door_beside(
    provider_ready: Awaitable[object],
    pipeline: IsolatedPipeline,
    state: Path,
    log_dir: Path,
    name: str,
    **gateway_env: str,
) -> list[ServerProcess]:
    """`start_front_door` while `provider_ready` (a provider's start) runs: neither waits for
    the other. Back once both are ready; the caller stops the processes returned."""
    front_door = asyncio.ensure_future(
        start_front_door(pipeline, state, log_dir, name, **gateway_env)
    )
    try:
        await provider_ready
    except BaseException:
        stop_all(await front_door)
        raise
    return await front_door
