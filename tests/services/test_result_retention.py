"""How long the results mirror keeps what it read (found by the soak: memory)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer

from consumer_service.result_store import ResultStore
from ethgw_wire.kafka import encode
from ethgw_wire.messages import ResultMessage, TaskStatus
from ethgw_wire.settings import KafkaSettings


def _result(task_id: str, status: TaskStatus = TaskStatus.SUCCEEDED) -> tuple[ResultMessage, bytes]:
    result = ResultMessage(task_id=task_id, operation="chain.block_number", status=status)
    return result, encode(result)


def _store(**kwargs: Any) -> ResultStore:
    # No broker: only the mirror's bookkeeping is exercised, the consumer is never started.
    return ResultStore(KafkaSettings(port=1), cast(AIOKafkaProducer, None), **kwargs)


async def test_a_result_older_than_the_history_is_forgotten() -> None:
    """Results are kept for history_s, then dropped as newer ones arrive."""
    store = _store(history_s=0.05)
    store.remember(*_result("a" * 32))
    await asyncio.sleep(0.1)
    store.remember(*_result("b" * 32))
    kept = store.known("b" * 32)
    assert store.known("a" * 32) is None
    assert kept is not None
    assert kept.task_id == "b" * 32


def test_the_mirror_holds_at_most_cache_size_results() -> None:
    """Past cache_size results the oldest go first."""
    store = _store(cache_size=2)
    for letter in "abc":
        store.remember(*_result(letter * 32))
    assert [store.known(x * 32) is not None for x in "abc"] == [False, True, True]


def test_an_accepted_record_after_the_result_keeps_the_result() -> None:
    """An ACCEPTED record written when a wait ran out may follow the result: the result stays."""
    store = _store()
    store.remember(*_result("a" * 32))
    store.remember(*_result("a" * 32, TaskStatus.ACCEPTED))
    known = store.known("a" * 32)
    assert known is not None
    assert known.status is TaskStatus.SUCCEEDED
