"""Produce and consume through the real broker: consumer groups, commits, restarts."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import TopicPartition

from devstack.kafka_broker import KafkaBroker
from tests.kafka.clients import consumer, producer, receive

pytestmark = pytest.mark.slow

TopicFactory = Callable[[int], Awaitable[str]]


async def _produce(broker: KafkaBroker, topic: str, values: list[str]) -> None:
    sender = producer(broker)
    await sender.start()
    try:
        for value in values:
            await sender.send_and_wait(topic, value.encode(), key=value.encode())
    finally:
        await sender.stop()


async def test_group_member_receives_every_message_and_commits_its_position(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """A group member receives every produced message, and its commit records how far it read."""
    topic = await new_topic(3)
    values = [f"m{i}" for i in range(30)]
    await _produce(kafka_broker, topic, values)

    member = consumer(kafka_broker, topic, group=f"ethgw.test.g.{uuid.uuid4().hex[:8]}")
    await member.start()
    try:
        records = await receive(member, len(values))
        await member.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await member.end_offsets(partitions)
        committed = {tp: await member.committed(tp) for tp in partitions}
    finally:
        await member.stop()

    assert sorted(r.value.decode() for r in records) == sorted(values)
    assert committed == ends


async def test_later_group_member_starts_at_the_committed_offset(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """A member joining the group later starts at the committed offset, not at the beginning."""
    topic = await new_topic(1)
    group = f"ethgw.test.g.{uuid.uuid4().hex[:8]}"
    await _produce(kafka_broker, topic, [str(i) for i in range(10)])
    tp = TopicPartition(topic, 0)

    first = consumer(kafka_broker, topic, group)
    await first.start()
    try:
        await receive(first, 4)
        await first.commit({tp: 4})
    finally:
        await first.stop()

    second = consumer(kafka_broker, topic, group)
    await second.start()
    try:
        rest = await receive(second, 6)
    finally:
        await second.stop()

    assert [r.offset for r in rest] == list(range(4, 10))
    assert [r.value.decode() for r in rest] == [str(i) for i in range(4, 10)]


async def test_committed_offset_and_unconsumed_messages_survive_a_broker_restart(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """After a broker restart the group's committed offset and the unread messages are there."""
    topic = await new_topic(1)
    group = f"ethgw.test.g.{uuid.uuid4().hex[:8]}"
    await _produce(kafka_broker, topic, [str(i) for i in range(10)])
    tp = TopicPartition(topic, 0)
    first = consumer(kafka_broker, topic, group)
    await first.start()
    try:
        await receive(first, 4)
        await first.commit({tp: 4})
    finally:
        await first.stop()

    pid_before = kafka_broker.pid()
    kafka_broker.stop()
    kafka_broker.start()
    assert kafka_broker.pid() != pid_before

    second = consumer(kafka_broker, topic, group)
    await second.start()
    try:
        committed = await second.committed(tp)
        rest = await receive(second, 6)
    finally:
        await second.stop()

    assert committed == 4
    assert [r.value.decode() for r in rest] == [str(i) for i in range(4, 10)]


async def test_round_trip_takes_milliseconds(
    kafka_broker: KafkaBroker, new_topic: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A produce→consume round trip on the local broker takes milliseconds, not a fetch wait."""
    topic = await new_topic(6)
    sender = producer(kafka_broker)
    member = consumer(kafka_broker, topic, group=f"ethgw.test.g.{uuid.uuid4().hex[:8]}")
    await sender.start()
    await member.start()
    try:
        # The first message waits for the group join; only later ones measure the path.
        await sender.send_and_wait(topic, b"warm-up", key=b"warm-up")
        await receive(member, 1)
        rounds_ms = []
        for i in range(30):
            started = time.perf_counter()
            await sender.send_and_wait(topic, str(i).encode(), key=str(i).encode())
            await receive(member, 1)
            rounds_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await member.stop()
        await sender.stop()

    median = statistics.median(rounds_ms)
    with capsys.disabled():
        print(
            f"\nkafka produce→consume round trip: median {median:.1f} ms, "
            f"max {max(rounds_ms):.1f} ms over {len(rounds_ms)} rounds"
        )
    # Generous: a busy CI box must pass; the fault this catches is a 100+ ms wait per message.
    assert median < 100
