"""Session fixtures of the Docker tests: a real engine (installed and started when missing) and a
small Geth cluster in its containers (a sealer and one service node) on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from devstack.docker_engine import Engine, ensure_engine, stop_engine
from geth_cluster.cluster import GethCluster
from geth_cluster.errors import DockerEngineError
from geth_cluster.runtimes.docker import DockerRuntime
from geth_cluster.toolchain import geth_binary
from tests.cluster_fixtures import cluster_settings

# Below the host's defaults, so the limits visibly bind (and the CPU ratio rises under load).
MEMORY_BUDGET_MB = 512.0
CPU_CORES = 0.5
SEALER_CPU_CORES = 1.0  # a node's own figure (node_cpu_cores_by_node) overrides CPU_CORES


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """The running engine; one this session started is stopped at its end."""
    try:
        engine = ensure_engine()
    except DockerEngineError as error:
        pytest.skip(f"no Docker engine could be started: {error}")
    print(f"docker engine ready in {engine.seconds:.1f}s (started: {engine.started_pid})")
    yield engine
    stop_engine(engine)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def docker_cluster(
    docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GethCluster]:
    """A sealer and one service node as containers; removed after the session."""
    settings = cluster_settings(tmp_path_factory.mktemp("docker-cluster"), nodes=1).model_copy(
        update={
            "runtime": "docker",
            "node_memory_budget_mb": MEMORY_BUDGET_MB,
            "node_cpu_cores": CPU_CORES,
            "node_cpu_cores_by_node": {"sealer": SEALER_CPU_CORES},
        }
    )
    runtime = DockerRuntime(settings, geth_binary())
    cluster = GethCluster(settings, runtime)
    try:
        await cluster.up()
        yield cluster
    finally:
        await runtime.remove_all()
        await cluster.aclose()
