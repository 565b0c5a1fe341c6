"""A producer or consumer whose owner is cancelled while it stops still closes every
connection: nothing is left open for the garbage collector to find."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import kafka_consumer, kafka_producer

pytestmark = pytest.mark.slow

TopicFactory = Callable[[int], Awaitable[str]]
USE_TIMEOUT_S = 30.0


def _open_connections(client: Any) -> int:
    kafka = getattr(client, "client", None) or client._client  # producer / consumer
    return sum(1 for conn in kafka._conns.values() if conn.connected())


async def _cancel_while_stopping(
    opened: AbstractAsyncContextManager[Any], use: Callable[[Any], Awaitable[None]]
) -> Any:
    """Use the client `opened` gives, cancel its owner as the context manager stops it, and
    return the client once the cancellation has gone through."""
    held: list[Any] = []
    used = asyncio.Event()

    async def owner() -> None:
        async with opened as client:
            held.append(client)
            await use(client)
            used.set()

    task = asyncio.create_task(owner())
    await asyncio.wait_for(used.wait(), USE_TIMEOUT_S)
    await asyncio.sleep(0)  # the owner has left the block: its stop is under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return held[0]


async def test_a_producer_cancelled_while_stopping_closes_its_connections(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Cancelling the producer's owner during its stop leaves no connection open."""
    topic = await new_topic(1)

    async def send(producer: Any) -> None:
        await producer.send_and_wait(topic, b"x")

    producer = await _cancel_while_stopping(kafka_producer(kafka_broker.settings), send)
    assert _open_connections(producer) == 0


async def test_a_consumer_cancelled_while_stopping_closes_its_connections(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Cancelling the consumer's owner during its stop leaves no connection open."""
    topic = await new_topic(1)

    async def fetch(consumer: Any) -> None:
        await consumer.getmany(timeout_ms=200)

    opened = kafka_consumer(kafka_broker.settings, topic, group_id=None)
    consumer = await _cancel_while_stopping(opened, fetch)
    assert _open_connections(consumer) == 0
