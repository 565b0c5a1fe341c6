"""The chain feed's records on a real broker: where a restarted feed continues."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.chain_heads import ChainHead
from ethgw_wire.kafka import decode, kafka_consumer, kafka_producer
from ethgw_wire.settings import KafkaSettings
from geth_cluster.chain_feed import KafkaHeadSink, last_published
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.manager import open_manager
from tests.pipeline_fixtures import create_topics

pytestmark = pytest.mark.slow


def head(number: int) -> ChainHead:
    return ChainHead(
        number=number,
        hash=f"0x{number:064x}",
        parent_hash=f"0x{number - 1:064x}",
        header={"number": hex(number)},
        source="node-1",
    )


async def test_a_restarted_feed_continues_after_the_topics_last_block(
    kafka_broker: KafkaBroker,
) -> None:
    """last_published is None on an empty topic, then the last block sent."""
    settings = KafkaSettings(topic_chain_heads="ethgw.test.chain-heads.restart")
    await create_topics(settings, {settings.topic_chain_heads: 1})
    assert await last_published(settings) is None
    async with kafka_producer(settings) as producer:
        sink = KafkaHeadSink(producer, settings.topic_chain_heads)
        for number in (7, 8, 9):
            await sink.send(head(number))
    found = await last_published(settings)
    assert found is not None
    assert found.number == 9


async def test_the_manager_runs_the_feed_when_it_publishes(
    kafka_broker: KafkaBroker, geth_cluster: GethCluster
) -> None:
    """open_manager with publishing on puts consecutive blocks, keyed by number, on the
    chain-heads topic."""
    settings = KafkaSettings(
        topic_chain_heads="ethgw.test.chain-heads.manager",
        topic_node_states="ethgw.test.chain-heads.manager.states",
        topic_events="ethgw.test.chain-heads.manager.events",
    )
    await create_topics(
        settings,
        {settings.topic_chain_heads: 1, settings.topic_node_states: 1, settings.topic_events: 1},
    )
    manager_settings = ManagerSettings(
        sample_interval_s=0.5, rpc_timeout_s=0.5, recycle=False, heal=False
    )
    records: list[Any] = []
    async with (
        open_manager(geth_cluster, settings, manager_settings),
        kafka_consumer(settings, settings.topic_chain_heads, group_id=None) as consumer,
    ):
        async with asyncio.timeout(90):
            while len(records) < 3:
                records.append(await consumer.getone())
    heads = [decode(ChainHead, r.value) for r in records]
    numbers = [h.number for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    assert [r.key for r in records] == [str(n).encode() for n in numbers]
    assert {h.source for h in heads} <= {"node-1", "node-2"}
