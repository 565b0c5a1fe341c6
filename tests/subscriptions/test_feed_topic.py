"""The chain feed's records on a real broker: where a restarted feed continues."""

from __future__ import annotations

import pytest

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.chain_heads import ChainHead
from ethgw_wire.kafka import kafka_producer
from ethgw_wire.settings import KafkaSettings
from geth_cluster.chain_feed import KafkaHeadSink, last_published
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
    settings = KafkaSettings(topic_chain_heads="test.chain-heads.restart")
    await create_topics(settings, {settings.topic_chain_heads: 1})
    assert await last_published(settings) is None
    async with kafka_producer(settings) as producer:
        sink = KafkaHeadSink(producer, settings.topic_chain_heads)
        for number in (7, 8, 9):
            await sink.send(head(number))
    found = await last_published(settings)
    assert found is not None
    assert found.number == 9
