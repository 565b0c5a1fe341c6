"""lbh-spec.md sections 4 and 5 on real providers (real Kafka, real Geth nodes, node states
set by the test): the pause's safety valve forces reads through after max_pause while writes
wait, and a round starts a mixed burst RT before DT before MAT before MCT."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.messages import ResultMessage
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import get_operation, new_task
from geth_cluster.cluster import GethCluster
from tests.pipeline.test_operations import ok
from tests.pipeline_fixtures import (
    IsolatedPipeline,
    idle_reports,
    isolated_provider,
)

pytestmark = pytest.mark.slow

MAX_PAUSE_S = 3.0
ZONE_I = (0.1, 0.1)
ZONE_II = (0.5, 0.5)
NEARER_ZONE_III = (0.8, 0.8)  # d = 1.13 > Dis_avemax = 1.0
FARTHER_ZONE_III = (0.9, 0.9)  # d = 1.27: with the one above, LBH < 0 and the round pauses
EMPTY_CONTRACT = "0x60006000f3"  # init code returning no runtime code


def states(
    cluster: GethCluster, node1: tuple[float, float], node2: tuple[float, float]
) -> list[NodeReport]:
    """node-1 and node-2 at the given (memory, cpu)."""
    base = {r.node_id: r for r in idle_reports(cluster)}
    return [
        base[node].model_copy(update={"memory": point[0], "cpu": point[1]})
        for node, point in (("node-1", node1), ("node-2", node2))
    ]


async def held_count(pipeline: IsolatedPipeline) -> int:
    async with httpx.AsyncClient() as http:
        ready = await http.get(f"{pipeline.providers[0].url}/readyz")
    return int(ready.json()["held"])


async def wait_held(pipeline: IsolatedPipeline, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await held_count(pipeline) < count:
        assert time.monotonic() < deadline, f"the provider never held {count} tasks"
        await asyncio.sleep(0.1)


async def test_safety_valve_forces_reads_after_max_pause_and_writes_wait(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
) -> None:
    """Paused (LBH < 0), a read is answered only after max_pause, by the node of smallest d,
    and counted as forced; the write beside it waits until LBH recovers."""
    async with isolated_provider(
        "valve",
        geth_cluster,
        platform_file,
        provider_log_dir,
        states(geth_cluster, ZONE_I, ZONE_II),
        ETHGW_PROVIDER_MAX_PAUSE_S=str(MAX_PAUSE_S),
    ) as (pipeline, client, steered):
        await steered.apply(states(geth_cluster, NEARER_ZONE_III, FARTHER_ZONE_III))
        write = new_task("token.set", {"address": "0x" + "b1" * 20, "value": 1})
        started = time.monotonic()
        await client.submit(write)
        read = await client.run(new_task("chain.block_number", {}), 30)
        read_after_s = time.monotonic() - started
        write_while_paused = await client.wait(write.task_id, 2.0)
        await steered.apply(states(geth_cluster, ZONE_I, ZONE_II))
        written = await client.wait(write.task_id, 60)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{pipeline.providers[0].url}/metrics")).text
    assert read is not None
    assert ok(read)["block_number"] > 0
    assert read.node == "node-1"
    assert read_after_s >= MAX_PAUSE_S
    assert write_while_paused is None
    assert written is not None
    assert ok(written)["status"] == "sent"
    assert "ethgw_provider_forced_dispatches_total 1.0" in metrics


def start_time(result: ResultMessage, enqueued_at: float) -> float:
    """When the provider started the task: its enqueue time plus its wait in the queue."""
    assert result.timings is not None
    return enqueued_at + result.timings.queued_s


async def test_a_mixed_burst_starts_rt_then_dt_then_mat_then_mct(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
) -> None:
    """A burst held in one round, arriving MAT, DT, MCT, RT, MAT, RT, starts (one task at a
    time) RT, RT, DT, MAT, MAT, MCT once the cluster is healthy again."""
    burst = [
        new_task("account.create", {"password": "priority-test-1"}),
        new_task("contract.deploy", {"abi": [], "bytecode": EMPTY_CONTRACT, "waitReceipt": False}),
        new_task("token.set", {"address": "0x" + "b2" * 20, "value": 2}),
        new_task("chain.block_number", {}),
        new_task("account.create", {"password": "priority-test-2"}),
        new_task("chain.block_number", {}),
    ]
    async with isolated_provider(
        "priority",
        geth_cluster,
        platform_file,
        provider_log_dir,
        states(geth_cluster, ZONE_I, ZONE_II),
        ETHGW_PROVIDER_MAX_PAUSE_S="600",
        ETHGW_PROVIDER_CONCURRENCY="1",
    ) as (pipeline, client, steered):
        await steered.apply(states(geth_cluster, NEARER_ZONE_III, FARTHER_ZONE_III))
        for task in burst:
            await client.submit(task)
        await wait_held(pipeline, len(burst))
        await steered.apply(states(geth_cluster, ZONE_I, ZONE_II))
        results = await asyncio.gather(*(client.wait(task.task_id, 90) for task in burst))
    assert all(r is not None and ok(r) is not None for r in results)
    starts = sorted(
        (
            (start_time(result, task.enqueued_at), task)
            for task, result in zip(burst, results, strict=True)
            if result is not None
        ),
        key=lambda pair: pair[0],
    )
    classes = [get_operation(task.operation).task_class.value for _, task in starts]
    assert classes == ["RT", "RT", "DT", "MAT", "MAT", "MCT"]
    first_rt, second_rt = (task for _, task in starts[:2])
    assert (first_rt, second_rt) == (burst[3], burst[5])  # oldest first within a class
