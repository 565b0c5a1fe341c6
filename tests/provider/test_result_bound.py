"""A result too large for Kafka ends its task, instead of a publication retried forever:
the dispatcher over in-memory parts (the real stack's test is in tests/front_door)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import ValidationError

from ethgw_wire.messages import ResultMessage, TaskStatus
from ethgw_wire.operations import new_task
from ethgw_wire.settings import KafkaSettings
from provider.handlers import Job
from provider.task_stream import MemoryResultSink
from tests.provider.test_dispatcher import READS, ScriptedStrategy, World

BOUND = 16 * 1024


async def _huge(job: Job) -> dict[str, Any]:
    return {"block_number": 7, "padding": "0" * (BOUND * 2)}


class RefusingSink(MemoryResultSink):
    """A broker whose limit is below the provider's bound: it refuses every result whose
    data is not None (as Kafka refuses a record over message.max.bytes), and counts tries."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 0

    async def publish(self, result: ResultMessage) -> None:
        if result.data is not None:
            self.refusals += 1
            raise MessageSizeTooLargeError("the message is larger than the broker takes")
        await super().publish(result)


async def test_a_result_over_the_bound_fails_as_result_too_large_and_commits() -> None:
    """A result whose record passes max_result_bytes is answered failed, result_too_large,
    naming its size and the bound; its offset commits."""
    world = World(ScriptedStrategy(), {"chain.block_number": _huge}, max_result_bytes=BOUND)
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    result = world.result_of(task)
    assert result is not None
    assert result.status is TaskStatus.FAILED
    assert result.data is None
    assert result.error is not None
    assert result.error.code == "result_too_large"
    assert f"over the limit of {BOUND} bytes" in result.error.message
    assert world.dispatcher.running == 0


async def test_a_result_kafka_refuses_ends_the_task_after_one_try() -> None:
    """A result the broker refuses for its size is not sent again: its failure
    (result_too_large) is published in its place and the offset commits."""
    sink = RefusingSink()
    world = World(ScriptedStrategy(), {"chain.block_number": _huge}, results=sink)
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    result = world.result_of(task)
    assert result is not None
    assert result.error is not None
    assert result.error.code == "result_too_large"
    assert "Kafka refused the result (MessageSizeTooLargeError)" in result.error.message
    assert sink.refusals == 1


async def test_a_result_within_the_bound_is_published_as_it_is() -> None:
    """The bound leaves an ordinary result alone."""
    world = World(ScriptedStrategy(), {"chain.block_number": _huge}, max_result_bytes=BOUND * 4)
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    result = world.result_of(task)
    assert result is not None
    assert result.status is TaskStatus.SUCCEEDED


def test_the_bound_must_stay_below_the_brokers_message_size() -> None:
    """KafkaSettings refuses a max_result_bytes that leaves no room under
    max_message_bytes for the record's own overhead."""
    with pytest.raises(ValidationError, match="must leave 1024 bytes below max_message_bytes"):
        KafkaSettings(max_message_bytes=1_048_576, max_result_bytes=1_048_000)
    assert KafkaSettings().max_result_bytes < KafkaSettings().max_message_bytes
