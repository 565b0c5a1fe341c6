"""The capacity rule (lbh-spec.md section 6) on a real provider: each class's memory need comes
from the calibration file, and a node without room for a task does not get it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import new_task
from geth_cluster.cluster import GethCluster
from tests.pipeline.test_operations import ok
from tests.pipeline_fixtures import (
    IsolatedPipeline,
    SteeredStates,
    idle_reports,
    isolated_provider,
)

pytestmark = pytest.mark.slow

NEED_MB = {"RT": 10.0, "DT": 300.0, "MAT": 300.0, "MCT": 300.0}
ROOM_FOR_READS_ONLY = 100.0  # free MB: above a read's need, below a write's
ROOM_FOR_ALL = 900.0
ZONE_I = (0.1, 0.1)  # d = 0.14: the write zone with the bounds 0.1 / 1.0
ZONE_II = (0.5, 0.5)  # d = 0.71: the read zone


def states(cluster: GethCluster, node1_free_mb: float, node2_free_mb: float) -> list[NodeReport]:
    """node-1 in zone I and node-2 in zone II, with the given free memory."""
    base = {r.node_id: r for r in idle_reports(cluster)}
    placed = (("node-1", ZONE_I, node1_free_mb), ("node-2", ZONE_II, node2_free_mb))
    return [
        base[node].model_copy(update={"memory": point[0], "cpu": point[1], "free_memory_mb": free})
        for node, point, free in placed
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def capacity(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[IsolatedPipeline, TaskClient, SteeredStates]]:
    """A provider of its own reading NEED_MB from its calibration file, with node states fed
    by the module."""
    calibration = tmp_path_factory.mktemp("capacity") / "calibration.json"
    calibration.write_text(
        json.dumps({"version": 1, "dis_avemin": 0.1, "dis_avemax": 1.0, "task_memory_mb": NEED_MB})
    )
    async with isolated_provider(
        "capacity",
        geth_cluster,
        platform_file,
        provider_log_dir,
        states(geth_cluster, ROOM_FOR_ALL, ROOM_FOR_ALL),
        ETHGW_LBH_CALIBRATION_FILE=str(calibration),
        ETHGW_PROVIDER_MAX_PAUSE_S="600",
    ) as provider:
        yield provider


async def test_the_provider_plans_with_the_files_task_memory(
    capacity: tuple[IsolatedPipeline, TaskClient, SteeredStates],
) -> None:
    """The provider logs the per-class needs it read from the calibration file."""
    pipeline, _, _ = capacity
    assert "task memory in use mb=RT:10,DT:300,MAT:300,MCT:300 source=file" in (
        pipeline.providers[0].log()
    )


async def test_a_write_skips_the_zone_one_node_without_room(
    capacity: tuple[IsolatedPipeline, TaskClient, SteeredStates], geth_cluster: GethCluster
) -> None:
    """node-1 is in the write zone but has less free memory than a write needs: the write goes
    to node-2, which has room, though it is in the read zone."""
    _, client, steered = capacity
    await steered.apply(states(geth_cluster, ROOM_FOR_READS_ONLY, ROOM_FOR_ALL))
    task = new_task("token.set", {"address": "0x" + "a1" * 20, "value": 1})
    result = await client.run(task, 60)
    assert result is not None
    assert ok(result)["status"] == "sent"
    assert result.node == "node-2"


async def test_a_write_no_node_has_room_for_waits_while_reads_go_on(
    capacity: tuple[IsolatedPipeline, TaskClient, SteeredStates], geth_cluster: GethCluster
) -> None:
    """With no node able to hold a write, the write is held (not failed) while a read, which
    needs less, is served; once node-1 has room again the write runs there."""
    _, client, steered = capacity
    await steered.apply(states(geth_cluster, ROOM_FOR_READS_ONLY, ROOM_FOR_READS_ONLY))
    write = new_task("token.set", {"address": "0x" + "a2" * 20, "value": 2})
    await client.submit(write)
    read = await client.run(new_task("chain.block_number", {}), 60)
    waiting = await client.wait(write.task_id, 3.0)
    await steered.apply(states(geth_cluster, ROOM_FOR_ALL, ROOM_FOR_READS_ONLY))
    written = await client.wait(write.task_id, 60)
    assert read is not None
    assert ok(read)["block_number"] > 0
    assert waiting is None
    assert written is not None
    assert ok(written)["status"] == "sent"
    assert written.node == "node-1"
