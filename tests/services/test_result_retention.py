"""How long a service instance keeps the results it mirrors (found by the soak: memory)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer

from consumer_service.task_client import TaskClient
from ethgw_wire.kafka import encode
from ethgw_wire.messages import ResultMessage, TaskStatus
from ethgw_wire.settings import KafkaSettings


def _result(task_id: str) -> tuple[ResultMessage, bytes]:
    result = ResultMessage(
        task_id=task_id, operation="chain.block_number", status=TaskStatus.SUCCEEDED
    )
    return result, encode(result)


def _client(**kwargs: Any) -> TaskClient:
    # No broker: only the mirror's bookkeeping is exercised, the consumer is never started.
    return TaskClient(KafkaSettings(port=1), cast(AIOKafkaProducer, None), **kwargs)


async def test_a_result_older_than_the_history_is_forgotten() -> None:
    """Results are kept for history_s, then dropped as newer ones arrive."""
    client = _client(history_s=0.05)
    client._remember(*_result("a" * 32))
    await asyncio.sleep(0.1)
    client._remember(*_result("b" * 32))
    kept = client.lookup("b" * 32)
    await client.stop()
    assert client.lookup("a" * 32) is None
    assert kept is not None
    assert kept.task_id == "b" * 32


async def test_the_mirror_holds_at_most_cache_size_results() -> None:
    """Past cache_size results the oldest go first."""
    client = _client(cache_size=2)
    for letter in "abc":
        client._remember(*_result(letter * 32))
    await client.stop()
    assert [client.lookup(x * 32) is not None for x in "abc"] == [False, True, True]
