"""The compose runtime against a real engine: it adopts existing node containers by label (here
the session Docker cluster's, selected by their cluster label, as compose.yaml's are by
ethgw.stack=compose), reads their pids and stats from the engine, and restarts one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psutil
import pytest
import pytest_asyncio

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.node_reports import Lifecycle
from geth_cluster.cluster import GethCluster
from geth_cluster.errors import NodeStartError
from geth_cluster.layout import NodeSpec
from geth_cluster.manager import open_manager
from geth_cluster.runtimes.compose import ComposeRuntime
from geth_cluster.runtimes.docker import LABEL_CLUSTER, DockerRuntime
from tests.docker.conftest import CPU_CORES, MEMORY_BUDGET_MB
from tests.geth_cluster.test_manager import fast, is_, node_states, wait_following

pytestmark = [pytest.mark.slow, pytest.mark.docker]

NODE = "node-1"


@pytest_asyncio.fixture(loop_scope="session")
async def adopted(docker_cluster: GethCluster) -> AsyncIterator[GethCluster]:
    """The session Docker cluster's containers seen through a compose runtime."""
    await wait_following(docker_cluster, timeout_s=60.0)
    owner = docker_cluster.runtime
    assert isinstance(owner, DockerRuntime)
    settings = docker_cluster.settings.model_copy(
        update={"runtime": "compose", "compose_selector": f"{LABEL_CLUSTER}={owner.cluster_id}"}
    )
    cluster = GethCluster(settings, ComposeRuntime(settings, refresh_s=0.2))
    try:
        assert await cluster.runtime.is_running(cluster.spec(NODE))
        yield cluster
    finally:
        await cluster.aclose()


async def test_adopted_node_pid_is_the_containers_host_pid(
    adopted: GethCluster, docker_cluster: GethCluster
) -> None:
    """The pid read from the engine is the one the owning Docker runtime knows."""
    spec = adopted.spec(NODE)
    assert adopted.runtime.pid(spec) is not None
    assert adopted.runtime.pid(spec) == docker_cluster.runtime.pid(docker_cluster.spec(NODE))


async def test_adopted_node_is_sampled_from_the_engine(adopted: GethCluster) -> None:
    """The sampler reads the container's memory from its stats stream."""
    sampler = adopted.runtime.sampler(adopted.spec(NODE), MEMORY_BUDGET_MB, CPU_CORES)
    sample = sampler.sample()
    assert 0 < sample.memory_mb < MEMORY_BUDGET_MB


async def test_adopted_node_restarts_in_its_own_container(
    adopted: GethCluster, docker_cluster: GethCluster
) -> None:
    """restart_node stops and starts the same container (new pid) and waits for the head."""
    spec = adopted.spec(NODE)
    before = adopted.runtime.pid(spec)
    owner = docker_cluster.runtime
    assert isinstance(owner, DockerRuntime)
    container_before = (await owner.inspect(docker_cluster.spec(NODE)))["Id"]
    try:
        await adopted.stop_node(NODE)
        assert not await adopted.runtime.is_running(spec)
        with pytest.raises(psutil.NoSuchProcess):
            adopted.runtime.sampler(spec, MEMORY_BUDGET_MB, CPU_CORES)
    finally:
        await adopted.start_node(NODE)
    after = adopted.runtime.pid(spec)
    assert after is not None
    assert after != before
    assert (await owner.inspect(docker_cluster.spec(NODE)))["Id"] == container_before
    assert await owner.is_running(docker_cluster.spec(NODE))  # the owner's pid file follows
    await wait_following(docker_cluster, timeout_s=60.0)


async def test_compose_runtime_creates_nothing(adopted: GethCluster, tmp_path: object) -> None:
    """A node without a container cannot be started, and `geth init` is refused."""
    ghost = NodeSpec("node-9", 9, False, adopted.spec(NODE).datadir, 1, 2, 3)
    with pytest.raises(NodeStartError, match="node-9"):
        await adopted.runtime.start(ghost, [])
    with pytest.raises(NodeStartError, match="geth init"):
        await adopted.runtime.run_once(adopted.spec(NODE), ["init"])
    assert adopted.runtime.pid(ghost) is None


async def test_manager_on_the_compose_runtime_publishes_node_states(
    adopted: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """The cluster manager samples adopted containers and publishes UP states with memory."""
    async with (
        node_states(kafka_broker.settings, adopted) as states,
        open_manager(adopted, kafka_broker.settings, fast(recycle=False)),
    ):
        report = await states.next(
            lambda r: is_(NODE, Lifecycle.UP)(r) and r.memory > 0.0, timeout_s=30.0
        )
    assert report.memory < 1.0
