"""With node states set by the test, the provider routes by zone and pauses on LBH < 0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.node_reports import Lifecycle, NodeReport
from ethgw_wire.operations import new_task
from geth_cluster.cluster import GethCluster
from geth_cluster.node_rpc import block_number
from geth_cluster.toolchain import geth_binary
from service_kit.ports import free_port
from tests.pipeline.test_operations import ok
from tests.pipeline_fixtures import IsolatedPipeline, fresh_states, idle_reports, task_client_for

pytestmark = pytest.mark.slow

ZONE_I = (0.1, 0.1)  # d = 0.14 <= Dis_ave = (0.1 + 1.0) / 2 with the default bounds
ZONE_II = (0.5, 0.5)  # d = 0.71, between Dis_ave and Dis_avemax
ZONE_III = (0.8, 0.8)  # d = 1.13 > Dis_avemax


def states(
    cluster: GethCluster, node1: tuple[float, float], node2: tuple[float, float]
) -> list[NodeReport]:
    base = {r.node_id: r for r in idle_reports(cluster)}
    return [
        base["node-1"].model_copy(update={"memory": node1[0], "cpu": node1[1]}),
        base["node-2"].model_copy(update={"memory": node2[0], "cpu": node2[1]}),
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def zoned(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
) -> AsyncIterator[tuple[IsolatedPipeline, TaskClient]]:
    """A provider of its own whose node states only this module sets."""
    pipeline = IsolatedPipeline(
        "zones", geth_cluster, platform_file, provider_log_dir, ETHGW_PROVIDER_MAX_PAUSE_S="600"
    )
    await pipeline.create_topics()
    try:
        # Fresh states until the provider is ready: on a loaded machine its start can take
        # longer than the age at which a node report counts as stale (node_stale_s).
        async with fresh_states(pipeline, lambda: states(geth_cluster, ZONE_I, ZONE_II)):
            await pipeline.start_provider("p")
        async with task_client_for(pipeline.settings) as client:
            yield pipeline, client
    finally:
        pipeline.stop()


async def test_reads_go_to_zone_two_and_writes_to_zone_one(
    zoned: tuple[IsolatedPipeline, TaskClient], geth_cluster: GethCluster
) -> None:
    """node-1 in zone I takes the writes, node-2 in zone II takes the reads."""
    pipeline, client = zoned
    await pipeline.publish_states(states(geth_cluster, ZONE_I, ZONE_II))
    await asyncio.sleep(0.5)
    reads = [new_task("chain.block_number", {}) for _ in range(5)]
    writes = [new_task("token.set", {"address": "0x" + "55" * 20, "value": i}) for i in range(3)]
    results = await asyncio.gather(*(client.run(t, 60) for t in reads + writes))
    read_nodes = {r.node for r in results[:5] if r is not None}
    write_nodes = {r.node for r in results[5:] if r is not None}
    assert all(r is not None and ok(r) is not None for r in results)
    assert read_nodes == {"node-2"}
    assert write_nodes == {"node-1"}


async def test_paused_round_dispatches_nothing_until_lbh_recovers(
    zoned: tuple[IsolatedPipeline, TaskClient], geth_cluster: GethCluster
) -> None:
    """With LBH < 0 a write waits (not dropped); it runs as soon as LBH >= 0 again."""
    pipeline, client = zoned
    await pipeline.publish_states(states(geth_cluster, ZONE_III, ZONE_III))
    await asyncio.sleep(0.5)
    task = new_task("token.set", {"address": "0x" + "66" * 20, "value": 7})
    waiting = await client.run(task, 3.0)
    await pipeline.publish_states(states(geth_cluster, ZONE_I, ZONE_II))
    result = await client.wait(task.task_id, 60)
    assert waiting is None
    assert result is not None
    assert ok(result)["status"] == "sent"


async def test_read_on_a_dead_node_is_retried_on_another(
    zoned: tuple[IsolatedPipeline, TaskClient], geth_cluster: GethCluster
) -> None:
    """A read routed to a node that does not answer is answered by another node."""
    pipeline, client = zoned
    dead = idle_reports(geth_cluster)[0].model_copy(
        update={"node_id": "node-9", "rpc_url": "http://127.0.0.1:9", "memory": 0.5, "cpu": 0.5}
    )
    await pipeline.publish_states([*states(geth_cluster, ZONE_I, ZONE_I), dead])
    await asyncio.sleep(0.5)
    result = await client.run(new_task("chain.block_number", {}), 60)
    assert result is not None
    assert ok(result)["block_number"] > 0
    assert result.node in {"node-1", "node-2"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def behind_node(
    geth_cluster: GethCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The RPC URL of a node of this very chain that has no peers: it stays at genesis,
    where the platform token does not exist yet, like a node that has not caught up."""
    datadir = tmp_path_factory.mktemp("behind")
    geth = str(geth_binary())
    init = await asyncio.create_subprocess_exec(
        geth, "--datadir", str(datadir), "init", str(geth_cluster.genesis_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await init.wait() == 0
    port = free_port()
    node = await asyncio.create_subprocess_exec(
        geth, "--datadir", str(datadir), "--networkid", str(geth_cluster.settings.chain_id),
        "--nodiscover", "--maxpeers", "0", "--port", str(free_port()),
        "--authrpc.port", str(free_port()), "--http", "--http.addr", "127.0.0.1",
        "--http.port", str(port), "--syncmode", "full", "--ipcdisable", "--verbosity", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(120):
                with contextlib.suppress(Exception):
                    assert await block_number(http, url) == 0
                    break
                await asyncio.sleep(0.25)
        yield url
    finally:
        node.terminate()
        await node.wait()


async def test_write_on_a_node_without_the_contract_is_sent_through_another(
    zoned: tuple[IsolatedPipeline, TaskClient], geth_cluster: GethCluster, behind_node: str
) -> None:
    """A token write routed to a node that lacks the token is not signed with the gas of
    a code-less call (it would run out on chain): the next node sends it, and it is mined."""
    pipeline, client = zoned
    behind = idle_reports(geth_cluster)[0].model_copy(
        update={"node_id": "node-0", "rpc_url": behind_node, "memory": 0.01, "cpu": 0.01}
    )
    await pipeline.publish_states([*states(geth_cluster, ZONE_I, ZONE_I), behind])
    await asyncio.sleep(0.5)
    task = new_task("token.set", {"address": "0x" + "77" * 20, "value": 9, "wait_receipt": True})
    try:
        result = await client.run(task, 60)
    finally:
        gone = behind.model_copy(update={"lifecycle": Lifecycle.DOWN})
        await pipeline.publish_states([*states(geth_cluster, ZONE_I, ZONE_II), gone])
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{pipeline.providers[0].port}/metrics")).text
    assert result is not None
    assert ok(result)["status"] == "mined"
    assert result.node in {"node-1", "node-2"}
    assert 'ethgw_provider_node_retries_total{node="node-0"} 1.0' in text


async def test_provider_exports_its_metrics(zoned: tuple[IsolatedPipeline, TaskClient]) -> None:
    """/metrics shows tasks by operation and status, zones, LBH and the pause counters."""
    pipeline, _ = zoned
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{pipeline.providers[0].port}/metrics")).text
    for name in (
        'ethgw_provider_tasks_total{operation="chain.block_number",status="succeeded"}',
        'ethgw_provider_queue_wait_seconds_count{task_class="RT"}',
        'ethgw_provider_execution_seconds_count{node="node-',  # by node and class
        'ethgw_provider_inflight{node="node-1"}',
        'ethgw_provider_node_zone{node="node-1"}',
        "ethgw_provider_lbh",
        "ethgw_provider_paused_seconds_total",
        "ethgw_provider_forced_dispatches_total",
    ):
        assert name in text, name
