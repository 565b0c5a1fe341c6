"""The one topic reader on a real broker: where it starts, and what `caught_up` promises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import kafka_producer
from ethgw_wire.topic_reader import Record, TopicReader, partitions_of
from tests.kafka.conftest import TopicFactory

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def producer(kafka_broker: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer(kafka_broker.settings) as made:
        yield made


async def _write(producer: AIOKafkaProducer, topic: str, *values: bytes) -> None:
    for value in values:
        await producer.send_and_wait(topic, value, key=value)


async def _read(kafka_broker: KafkaBroker, producer: AIOKafkaProducer, topic: str,
                since: float | None) -> list[bytes]:  # fmt: skip
    seen: list[bytes] = []
    reader = TopicReader(kafka_broker.settings, lambda r: seen.append(r.value), name="test")
    await reader.start(await partitions_of(producer, topic), since=since)
    try:
        assert await reader.caught_up(10.0)
    finally:
        await reader.stop()
    return sorted(seen)


async def test_a_reader_without_a_start_reads_from_the_beginning(
    kafka_broker: KafkaBroker, producer: AIOKafkaProducer, new_topic: TopicFactory
) -> None:
    """Records written before the reader started are read, from every partition."""
    topic = await new_topic(3)
    await _write(producer, topic, b"a", b"b", b"c", b"d")
    assert await _read(kafka_broker, producer, topic, None) == [b"a", b"b", b"c", b"d"]


async def test_a_reader_from_a_moment_skips_what_was_written_before_it(
    kafka_broker: KafkaBroker, producer: AIOKafkaProducer, new_topic: TopicFactory
) -> None:
    """With `since`, only records written at or after that moment are read."""
    topic = await new_topic(2)
    await _write(producer, topic, b"old-1", b"old-2")
    await asyncio.sleep(
        0.05
    )  # record timestamps are in milliseconds: keep the moment clear of them
    moment = time.time()
    await _write(producer, topic, b"new-1", b"new-2")
    assert await _read(kafka_broker, producer, topic, moment) == [b"new-1", b"new-2"]


async def test_caught_up_waits_for_what_was_written_before_the_call(
    kafka_broker: KafkaBroker, producer: AIOKafkaProducer, new_topic: TopicFactory
) -> None:
    """When caught_up answers True, every record written before the call was handed over."""
    topic = await new_topic(2)
    seen: list[Record] = []
    reader = TopicReader(kafka_broker.settings, seen.append, name="test")
    await reader.start(await partitions_of(producer, topic), since=time.time())
    try:
        await _write(producer, topic, *(f"v{i}".encode() for i in range(50)))
        assert await reader.caught_up(10.0)
        assert len(seen) == 50
    finally:
        await reader.stop()


async def test_a_stopped_reader_is_caught_up(
    kafka_broker: KafkaBroker, producer: AIOKafkaProducer, new_topic: TopicFactory
) -> None:
    """A reader stopped has nothing left to read: caught_up answers at once."""
    topic = await new_topic(1)
    reader = TopicReader(kafka_broker.settings, lambda r: None, name="test")
    await reader.start(await partitions_of(producer, topic))
    await reader.stop()
    assert await reader.caught_up(0.0)
