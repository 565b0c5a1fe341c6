"""A real Geth node confined to its allotment by the process runtime (the benchmark's
node-bound scenario), and the cluster manager's view of it: CPU used against the cores
allotted, so a node saturated at its cap reads as saturated, not as a few percent of the host.

Needs a writable cgroup hierarchy (skipped where there is none: the unit tests of the files
written are test_cgroups.py). Its own one-node cluster, since the session's is unconfined.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
import pytest_asyncio

from geth_cluster.calibrate import BURN_CODE, BURN_GAS
from geth_cluster.cgroups import Allotment, CgroupLimit
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.layout import cluster_id
from geth_cluster.manager import ClusterManager
from geth_cluster.node_rpc import rpc_call
from geth_cluster.runtimes import make_runtime
from geth_cluster.toolchain import geth_binary
from tests.cluster_fixtures import cluster_settings

CAP_CORES = 0.2  # enough for geth to start in seconds, far below what the burn load takes


def _cgroups_writable() -> bool:
    try:
        probe = CgroupLimit(f"ethgw-test-probe-{os.getpid()}", Allotment(0.5))
    except OSError:
        return False
    probe.close()
    return True


@pytest_asyncio.fixture(scope="module")
async def capped_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GethCluster]:
    """A sealer and one service node, the node confined to CAP_CORES and 1 GiB."""
    if not _cgroups_writable():
        pytest.skip("no writable cgroup here: the process runtime cannot confine a node")
    settings = cluster_settings(tmp_path_factory.mktemp("capped"), nodes=1).model_copy(
        update={"process_node_cgroup": True, "node_cpu_cores": CAP_CORES, "start_timeout_s": 240.0}
    )
    cluster = GethCluster(settings, make_runtime(settings, geth_binary()))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETHGW_MANAGER_HEAL", "false")
        try:
            await cluster.up()
            yield cluster
        finally:
            await cluster.down()
            await cluster.aclose()


def _cpu_group_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    return ""


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_service_node_runs_in_its_group_and_the_sealer_does_not(
    capped_cluster: GethCluster,
) -> None:
    """The node's geth is in the cluster's group for it; the sealer's is not confined."""
    node, sealer = capped_cluster.spec("node-1"), capped_cluster.spec("sealer")
    node_pid, sealer_pid = capped_cluster.runtime.pid(node), capped_cluster.runtime.pid(sealer)
    assert node_pid is not None
    assert sealer_pid is not None
    group = f"ethgw-{cluster_id(capped_cluster.settings.state_dir)}-node-1"
    assert _cpu_group_of(node_pid).endswith(group)
    assert "ethgw-" not in _cpu_group_of(sealer_pid)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_manager_reports_a_capped_nodes_cpu_against_its_cap(
    capped_cluster: GethCluster,
) -> None:
    """Under a load that saturates its cap, the node uses about CAP_CORES of the host, and the
    manager reports it near full CPU (against 1 core it would read about 0.2)."""
    spec = capped_cluster.spec("node-1")
    stop = asyncio.Event()

    async def burn(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            call = {"data": BURN_CODE, "gas": hex(BURN_GAS)}
            with contextlib.suppress(Exception):  # a slow answer under the cap is fine
                await rpc_call(http, spec.rpc_url, "eth_call", [call, "latest"])

    settings = ManagerSettings(sample_interval_s=0.5, rpc_timeout_s=0.5, publish=False)
    pid = capped_cluster.runtime.pid(spec)
    assert pid is not None
    geth = psutil.Process(pid)
    readings: list[float] = []
    async with httpx.AsyncClient(timeout=60.0) as http:
        burners = [asyncio.create_task(burn(http)) for _ in range(4)]
        try:
            await asyncio.sleep(2.0)  # the load reaches the cap
            async with ClusterManager(capped_cluster, settings) as manager:
                used_before, started = sum(geth.cpu_times()[:2]), time.monotonic()
                for _ in range(12):
                    await asyncio.sleep(0.5)
                    readings.append(manager.reports()["node-1"].cpu)
                used = (sum(geth.cpu_times()[:2]) - used_before) / (time.monotonic() - started)
        finally:
            stop.set()
            for burner in burners:
                burner.cancel()
            await asyncio.gather(*burners, return_exceptions=True)
    assert used < CAP_CORES * 1.5  # the cap holds
    assert max(readings[-6:]) > 0.6  # and the manager measures against it
