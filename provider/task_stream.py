"""Where the dispatcher's tasks come from and its results go: two seams, each with
its Kafka implementation and an in-memory one beside it (for tests of the logic above).

A task source hands out records by partition and offset and takes commit points; a
result sink publishes one result and returns once it is durable.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ethgw_wire.kafka import publish
from ethgw_wire.messages import ResultMessage


@dataclass(frozen=True)
class TaskRecord:
    """One record of a task topic: where it sits and its raw value."""

    partition: TopicPartition
    offset: int
    value: bytes | None


class TaskSource(ABC):
    """What the dispatcher needs of the task topics' consumer."""

    @abstractmethod
    async def fetch(self, max_records: int, timeout_ms: int) -> list[TaskRecord]:
        """Up to `max_records` new records, waiting at most `timeout_ms` for the first."""

    @abstractmethod
    async def commit(self, points: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read of each partition (everything below is done)."""

    @abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer owns now."""


class ResultSink(ABC):
    """Where results go."""

    @abstractmethod
    async def publish(self, result: ResultMessage) -> None:
        """Publish one result; returns once the broker acknowledged it."""


class KafkaTaskSource(TaskSource):
    """The task topics through a group consumer with manual commits."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def fetch(self, max_records: int, timeout_ms: int) -> list[TaskRecord]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [
            TaskRecord(tp, record.offset, record.value)
            for tp, records in batches.items()
            for record in records
        ]

    async def commit(self, points: Mapping[TopicPartition, int]) -> None:
        await self._consumer.commit(dict(points))

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())


class KafkaResultSink(ResultSink):
    """The results topic, keyed by task id (so one task's records stay in order)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, result: ResultMessage) -> None:
        await publish(self._producer, self._topic, result, key=result.task_id)


class MemoryTaskSource(TaskSource):
    """Task records held in this process; `log` notes every commit, in order."""

    def __init__(self, log: list[tuple[str, object]] | None = None) -> None:
        self.log: list[tuple[str, object]] = [] if log is None else log
        self.committed: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] | None = None  # None: every partition added to
        self._records: list[TaskRecord] = []
        self._next_offset: dict[TopicPartition, int] = {}
        self._partitions: set[TopicPartition] = set()

    def add(self, partition: TopicPartition, value: bytes | None) -> TaskRecord:
        """Append a record at the partition's next offset."""
        offset = self._next_offset.get(partition, 0)
        self._next_offset[partition] = offset + 1
        self._partitions.add(partition)
        record = TaskRecord(partition, offset, value)
        self._records.append(record)
        return record

    async def fetch(self, max_records: int, timeout_ms: int) -> list[TaskRecord]:
        if not self._records:
            # As a consumer does: an empty fetch waits out its timeout (and lets others run).
            await asyncio.sleep(timeout_ms / 1000)
        taken, self._records = self._records[:max_records], self._records[max_records:]
        return taken

    async def commit(self, points: Mapping[TopicPartition, int]) -> None:
        for partition, offset in points.items():
            self.log.append(("committed", (partition, offset)))
        self.committed.update(points)

    def assignment(self) -> set[TopicPartition]:
        return set(self._partitions) if self.assigned is None else set(self.assigned)


class MemoryResultSink(ResultSink):
    """Results kept in this process; `log` notes every publication, in order. Each
    publication takes `delay_s`, as a broker's acknowledgement does."""

    def __init__(self, log: list[tuple[str, object]] | None = None, delay_s: float = 0.0) -> None:
        self.log: list[tuple[str, object]] = [] if log is None else log
        self.results: list[ResultMessage] = []
        self._delay_s = delay_s

    async def publish(self, result: ResultMessage) -> None:
        await asyncio.sleep(self._delay_s)
        self.log.append(("published", result.task_id))
        self.results.append(result)
