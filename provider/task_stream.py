"""Where the dispatcher's tasks come from and its results go: two seams, each with
its Kafka implementation and an in-memory one beside it (for tests of the logic above).

A task source hands out records by partition and offset and takes commit points; a
result sink publishes one result and returns once it is durable.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ethgw_wire.kafka import encode, kafka_producer
from ethgw_wire.messages import ResultMessage
from ethgw_wire.settings import KafkaSettings
from provider import metrics
from provider.reply_topics import DropReason, ReplyTopicBook, ReplyTopics
from service_kit.logs import get_logger

log = get_logger("ethgw.provider")

# How long a reply may take before it is given up: the result is on the shared topic
# already, so a reply that does not make it only sends its waiter there.
REPLY_TIMEOUT_S = 5.0
# The replies to one instance that one request to the broker carries (aiokafka's default is
# 16 KB, one large account list): a reply topic has one partition and the producer one
# request in flight, so a burst of replies waits one round trip per batch. Well below the
# broker's 1 MB limit on a batch.
REPLY_BATCH_BYTES = 256 * 1024
# How long the publishing path waits for a reply to be queued; a reply that would wait
# longer (its topic's batch is full until the request ahead is answered) is sent from a
# task of its own.
REPLY_QUEUE_TIMEOUT_S = 0.1


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
    """The shared results topic, keyed by task id (so one task's records stay in order),
    and the reply topic the task named, read by the instance that waits for it.

    The shared record is the durable one (GET /tasks/{id}, the fault ledger, a wait that
    ran out): publish() returns once it is acknowledged. The reply only spares the waiter
    a read of the shared topic, so it is not waited for, and goes through a producer of
    its own (see `reply_producer`). A reply to a topic that is gone (its instance stopped)
    is dropped before it reaches the producer (`ReplyTopics`), counted, and logged once
    per topic.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        replies: AIOKafkaProducer | None = None,
        reply_prefix: str = "",
        reply_topics: ReplyTopics | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._replies = replies
        self._reply_prefix = reply_prefix
        if reply_topics is None and replies is not None:
            reply_topics = watch_reply_topics(replies)
        self._reply_topics = reply_topics
        self._pending: set[asyncio.Task[None]] = set()

    async def publish(self, result: ResultMessage) -> None:
        value, key = encode(result), result.task_id.encode()
        if self._replies is not None and self._reply_topics is not None and result.reply_to:
            await self._reply(self._replies, self._reply_topics, result.reply_to, value, key)
        await (await self._producer.send(self._topic, value, key=key))

    async def _reply(
        self, replies: AIOKafkaProducer, topics: ReplyTopics, topic: str, value: bytes, key: bytes
    ) -> None:
        """Queue the reply; its acknowledgement is not waited for. A send to a topic whose
        metadata is known does not yield to the loop, so the reply leaves first."""
        if not topic.startswith(self._reply_prefix):
            # A task names its reply topic; only reply topics are written, whatever it names.
            _dropped(topics, topic, DropReason.NOT_A_REPLY_TOPIC)
            return
        ready_at = topics.now()
        known = topics.known(topic, ready_at)
        if known is False:
            _dropped(topics, topic, DropReason.INSTANCE_GONE)
        elif known and replies.client.cluster.partitions_for_topic(topic) is not None:
            if not await _send_now(replies, topics, topic, value, key):
                # Its batch is full: the broker is slow, or the topic has just gone (its
                # batch waits for a leader). A check that starts now tells which.
                now = topics.now()
                self._in_background(
                    _reply_later(replies, topics, topic, now, value, key, recheck=True)
                )
        else:
            # A check, or learning a new topic's partitions, takes a request: not on this path.
            self._in_background(_reply_later(replies, topics, topic, ready_at, value, key))

    def _in_background(self, sending: Coroutine[Any, Any, None]) -> None:
        """Send a reply from a task of its own, off the publishing path."""
        later = asyncio.create_task(sending)
        self._pending.add(later)
        later.add_done_callback(self._pending.discard)


async def _send_now(
    replies: AIOKafkaProducer, topics: ReplyTopics, topic: str, value: bytes, key: bytes
) -> bool:
    """Queue the reply if the producer takes it at once; False when it would have to wait
    (the topic's batch is full until the request before it is answered)."""
    topics.track(topic)
    try:
        # A full batch for a partition that lost its leader would wait for it to expire.
        async with asyncio.timeout(REPLY_QUEUE_TIMEOUT_S):
            sent = await replies.send(topic, value, key=key)
    except TimeoutError:
        return False
    except KafkaError:
        _dropped(topics, topic, DropReason.NOT_DELIVERED)
        return True
    sent.add_done_callback(partial(_delivered, topics, topic))
    return True


async def _reply_later(
    replies: AIOKafkaProducer,
    topics: ReplyTopics,
    topic: str,
    ready_at: float,
    value: bytes,
    key: bytes,
    *,
    recheck: bool = False,
) -> None:
    if not await topics.exists(topic, ready_at, recheck=recheck):
        _dropped(topics, topic, DropReason.INSTANCE_GONE)
        return
    topics.track(topic)
    try:
        await (await replies.send(topic, value, key=key))
    except KafkaError:
        _dropped(topics, topic, DropReason.NOT_DELIVERED)


def _delivered(topics: ReplyTopics, topic: str, sent: asyncio.Future[object]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        _dropped(topics, topic, DropReason.NOT_DELIVERED)


def _dropped(topics: ReplyTopics, topic: str, reason: DropReason) -> None:
    """Count every dropped reply; log the first of each topic."""
    metrics.REPLIES_DROPPED.labels(reason.value).inc()
    if topics.book.first_drop(topic):
        log.info("reply_dropped", topic=topic, reason=reason.value)


def watch_reply_topics(
    replies: AIOKafkaProducer, book: ReplyTopicBook | None = None
) -> ReplyTopics:
    """The reply topics as the reply producer's client sees them, told of its every
    metadata update."""
    watch = ReplyTopics(replies.client, book)
    replies.client.cluster.add_listener(lambda cluster: watch.metadata_updated(cluster.topics()))
    return watch


def reply_producer(settings: KafkaSettings) -> AbstractAsyncContextManager[AIOKafkaProducer]:
    """The producer of replies. Not idempotent: an idempotent producer retries a batch
    forever, and one for a deleted reply topic would then never let the producer stop.
    Here a batch that cannot be delivered expires after REPLY_TIMEOUT_S."""
    return kafka_producer(
        settings,
        acks=1,
        enable_idempotence=False,
        request_timeout_ms=int(REPLY_TIMEOUT_S * 1000),
        max_batch_size=REPLY_BATCH_BYTES,
    )


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
