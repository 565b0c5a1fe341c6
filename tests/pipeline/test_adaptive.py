"""A provider run with lbh_adaptive on the real pipeline (Kafka, Geth): a burst of reads and
writes all succeed, and the writes reach the chain."""

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
from geth_cluster.cluster import GethCluster
from tests.pipeline.test_operations import ok
from tests.pipeline_fixtures import IsolatedPipeline, fresh_states, idle_reports, task_client_for

pytestmark = pytest.mark.slow

READS = 40
WRITES = 20
RESULT_TIMEOUT_S = 120.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def adaptive(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
) -> AsyncIterator[tuple[IsolatedPipeline, TaskClient]]:
    """A provider of its own running lbh_adaptive, fed fresh idle node states every second."""
    pipeline = IsolatedPipeline(
        "adaptive",
        geth_cluster,
        platform_file,
        provider_log_dir,
        ETHGW_PROVIDER_STRATEGY="lbh_adaptive",
    )
    await pipeline.create_topics()
    try:
        async with fresh_states(pipeline, lambda: idle_reports(geth_cluster)):
            await pipeline.start_provider("p")
            async with task_client_for(pipeline.settings) as client:
                yield pipeline, client
    finally:
        pipeline.stop()


async def test_a_mixed_burst_runs_with_no_failure(
    adaptive: tuple[IsolatedPipeline, TaskClient],
) -> None:
    """40 reads and 20 writes submitted at once all succeed; a last write is mined after them."""
    pipeline, client = adaptive
    reads = [new_task("chain.block_number", {}) for _ in range(READS // 2)] + [
        new_task("token.balance", {"address": "0x" + "88" * 20}) for _ in range(READS // 2)
    ]
    writes = [
        new_task("token.set", {"address": "0x" + "99" * 20, "value": i}) for i in range(WRITES)
    ]
    results = await asyncio.gather(*(client.run(t, RESULT_TIMEOUT_S) for t in reads + writes))
    last = await client.run(
        new_task("token.set", {"address": "0x" + "99" * 20, "value": 99, "wait_receipt": True}),
        RESULT_TIMEOUT_S,
    )
    failures = [r for r in [*results, last] if r is None or r.status is not TaskStatus.SUCCEEDED]
    assert failures == []
    assert last is not None
    assert ok(last)["status"] == "mined"
    assert "strategy=lbh_adaptive" in pipeline.providers[0].log()
