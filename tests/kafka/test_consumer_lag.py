"""The gateway's Kafka lag probe ("tasks waiting in Kafka" on the dashboard) on the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import kafka_consumer, kafka_producer
from ethgw_wire.settings import KafkaSettings
from gateway.kafka_lag import LagProbe
from service_kit.ports import free_port
from tests.kafka.conftest import TopicFactory

pytestmark = pytest.mark.slow


async def produce(settings: KafkaSettings, topic: str, partition: int, count: int) -> None:
    async with kafka_producer(settings) as producer:
        for number in range(count):
            await producer.send_and_wait(topic, f"task-{number}".encode(), partition=partition)


async def commit(settings: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for `group`, as a provider does after finishing the tasks before."""
    async with kafka_consumer(settings, group_id=group) as consumer:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)


async def test_lag_is_end_offset_minus_committed(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """5 tasks in a partition, the group committed 2: 3 are waiting."""
    settings = kafka_broker.settings
    read, write = await new_topic(2), await new_topic(1)
    group = f"ethgw.test.lag-{uuid.uuid4().hex[:8]}"
    await produce(settings, read, 1, 5)
    await commit(settings, group, {TopicPartition(read, 1): 2})
    probe = LagProbe(settings, group, (read, write))
    try:
        reading = await probe.measure()
    finally:
        await probe.aclose()
    assert reading.error is None
    assert reading.topics == {read: 3, write: 0}
    assert reading.total == 3


async def test_partition_never_committed_counts_from_its_start(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """A group that never committed has every task of the topic waiting."""
    settings = kafka_broker.settings
    topic = await new_topic(2)
    await produce(settings, topic, 0, 4)
    probe = LagProbe(settings, f"ethgw.test.lag-{uuid.uuid4().hex[:8]}", (topic,))
    try:
        reading = await probe.measure()
    finally:
        await probe.aclose()
    assert reading.topics == {topic: 4}


async def test_unreachable_broker_gives_a_reason() -> None:
    """With no broker the probe answers an error reading within its timeout, not a hang."""
    settings = KafkaSettings(port=free_port())
    probe = LagProbe(settings, "ethgw-providers", ("a", "b"), timeout_s=1.0)
    try:
        reading = await probe.measure()
    finally:
        await probe.aclose()
    assert reading.total is None
    assert reading.error


async def test_latest_answers_at_once_and_measures_in_the_background(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """The first latest() says not measured yet; a later one has the measured lag."""
    settings = kafka_broker.settings
    topic = await new_topic(1)
    await produce(settings, topic, 0, 2)
    probe = LagProbe(settings, f"ethgw.test.lag-{uuid.uuid4().hex[:8]}", (topic,), cache_s=60.0)
    try:
        first = probe.latest()
        async with asyncio.timeout(20):
            while True:  # poll until the background measurement has landed
                reading = probe.latest()
                if reading.error is None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await probe.aclose()
    assert first.error == "not measured yet"
    assert reading.topics == {topic: 2}
