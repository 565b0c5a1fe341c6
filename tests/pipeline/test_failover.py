"""Providers share the work of one group, and a killed one loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.messages import TaskStatus
from ethgw_wire.operations import new_task
from ethgw_wire.platform_record import PlatformRecord
from geth_cluster.cluster import GethCluster
from tests.pipeline.test_operations import ok
from tests.pipeline_fixtures import (
    IsolatedPipeline,
    fresh_states,
    idle_reports,
    run_task,
    task_client_for,
)

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture(loop_scope="session")
async def pair(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[IsolatedPipeline, TaskClient]]:
    """Two providers of one group; all writes on one partition, reads on two."""
    pipeline = IsolatedPipeline(
        f"fo-{request.node.name[:20]}",
        geth_cluster,
        platform_file,
        provider_log_dir,
        write_partitions=1,
    )
    await pipeline.create_topics()
    try:
        async with fresh_states(pipeline, lambda: idle_reports(geth_cluster), every_s=2.0):
            # Both join at once: each is ready once its partitions of one group generation
            # are assigned, as when the second joins after the first.
            await asyncio.gather(pipeline.start_provider("a"), pipeline.start_provider("b"))
            async with task_client_for(pipeline.settings) as client:
                yield pipeline, client
    finally:
        pipeline.stop()


async def test_two_providers_share_the_reads(pair: tuple[IsolatedPipeline, TaskClient]) -> None:
    """Reads spread over both providers of the group, and each gets a result."""
    _, client = pair
    batch = [new_task("chain.block_number", {}) for _ in range(40)]
    results = await asyncio.gather(*(client.run(t, 60) for t in batch))
    providers = {r.provider for r in results if r is not None}
    assert all(r is not None and r.status is TaskStatus.SUCCEEDED for r in results)
    assert len(providers) == 2


async def test_rebalance_loses_no_task(
    pair: tuple[IsolatedPipeline, TaskClient], geth_cluster: GethCluster
) -> None:
    """A third provider joining and one leaving mid-stream: every task gets its result."""
    pipeline, client = pair
    batch = [new_task("chain.block_number", {}) for _ in range(60)]
    waits = [asyncio.ensure_future(client.wait(t.task_id, 90)) for t in batch]
    for index, task in enumerate(batch):
        await client.submit(task)
        if index == 20:
            joining = asyncio.ensure_future(pipeline.start_provider("c"))
        if index == 40:
            await joining
            pipeline.providers[0].stop()
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*waits)
    assert all(r is not None and r.status is TaskStatus.SUCCEEDED for r in results)


async def test_killed_provider_loses_no_write_and_sends_none_twice(
    pair: tuple[IsolatedPipeline, TaskClient],
    platform: PlatformRecord,
    tasks: TaskClient,
) -> None:
    """kill -9 of the provider holding the writes: each write gets one result, one transaction."""
    pipeline, client = pair
    admin = platform.admin_address
    before = await _nonce(client, admin)
    probe = await client.run(new_task("token.set", {"address": "0x" + "77" * 20, "value": 1}), 60)
    assert probe is not None
    owner = next(p for p in pipeline.providers if p.name == probe.provider)
    batch = [
        new_task("token.mint", {"address": "0x" + "77" * 20, "value": 1, "wait_receipt": True})
        for _ in range(30)
    ]
    waits = [asyncio.ensure_future(client.wait(t.task_id, 120)) for t in batch]
    for task in batch:
        await client.submit(task)
    # Before the next 1 s block can mine them all: some signed and sent, some not started.
    await asyncio.sleep(0.5)
    owner.kill()
    results = await asyncio.gather(*waits)
    answers = [ok(r) for r in results if r is not None]
    hashes = {a["tx_hash"] for a in answers}
    survivors = {r.provider for r in results if r is not None} - {owner.name}
    after = await _nonce(client, admin)
    assert len(answers) == 30
    assert survivors, "the kill came after the batch: nothing was taken over"
    assert len(hashes) == 30
    assert all(a["status"] == "mined" for a in answers)
    assert after - before == 31  # the probe and the 30: nothing sent twice


async def _nonce(tasks: TaskClient, address: str) -> int:
    count = ok(
        await run_task(
            tasks, "rpc.call", method="eth_getTransactionCount", params=[address, "pending"]
        )
    )
    return int(count, 16)
