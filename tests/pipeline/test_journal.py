"""The provider's journal keeps a write's signed bytes only until its task is committed."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer_service.task_client import TaskClient
from ethgw_wire.kafka import client_options
from ethgw_wire.operations import new_task
from ethgw_wire.settings import KafkaSettings
from tests.pipeline.test_operations import new_unlocked_account, ok
from tests.pipeline_fixtures import RESULT_TIMEOUT_S

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("provider")]


async def _journal_values(
    keys: set[str], wanted: int, timeout_s: float = 60.0
) -> list[bytes | None]:
    """The journal topic's values for `keys`, in order, once `wanted` of them are there."""
    settings = KafkaSettings()
    reader = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        topic = settings.topic_tx_journal
        count = settings.topic_partitions()[topic]
        partitions = [TopicPartition(topic, p) for p in range(count)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        values: list[bytes | None] = []
        async with asyncio.timeout(timeout_s):
            while len(values) < wanted:
                batches = await reader.getmany(timeout_ms=500)
                for records in batches.values():
                    values += [r.value for r in records if r.key and r.key.decode() in keys]
        return values
    finally:
        await reader.stop()


async def test_a_committed_write_leaves_a_tombstone_in_the_journal(tasks: TaskClient) -> None:
    """A mined transfer's journal record is followed by its tombstone once it is committed."""
    sender = await new_unlocked_account(tasks)
    task = new_task("eth.send", {"from": sender, "to": "0x" + secrets.token_hex(20), "value": 1})
    result = await tasks.run(task, RESULT_TIMEOUT_S)
    assert result is not None
    ok(result)
    values = await _journal_values({task.task_id}, wanted=2)
    assert values[0] is not None
    assert values[1] is None


async def test_an_account_creation_drops_its_funding_record_too(tasks: TaskClient) -> None:
    """account.create journals its funding transfer under a key of its own: pruned as well."""
    task = new_task("account.create", {"password": "journal-pruning-test"})
    result = await tasks.run(task, RESULT_TIMEOUT_S)
    assert result is not None
    ok(result)
    values = await _journal_values({f"{task.task_id}:fund"}, wanted=2)
    assert values[0] is not None
    assert values[1] is None
