"""aiokafka clients as the platform's request path configures them, for the Kafka tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import client_options


def producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """A producer that sends each message at once and waits for the broker's write."""
    return AIOKafkaProducer(
        **client_options(broker.settings),
        linger_ms=0,  # no batching delay on the request path
        acks="all",  # the restart test needs messages on disk before the broker stops
    )


def consumer(broker: KafkaBroker, topic: str, group: str) -> AIOKafkaConsumer:
    """A group member that starts at the beginning when the group has no commit yet."""
    return AIOKafkaConsumer(
        topic,
        **client_options(broker.settings),
        group_id=group,
        enable_auto_commit=False,  # the tests commit exactly what they mean to
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )


async def receive(member: AIOKafkaConsumer, count: int, timeout_s: float = 30.0) -> list[Any]:
    """The next `count` records, one at a time so the position moves only past them."""
    async with asyncio.timeout(timeout_s):
        return [await member.getone() for _ in range(count)]
