"""Replies on a real broker: a result reaches the instance that waits for it and no other,
any instance finds a task on the shared results topic, and ACCEPTED is written only when a
wait runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import client_options, decode, kafka_producer, publish
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.operations import new_task
from ethgw_wire.settings import KafkaSettings
from provider.reply_topics import DropReason, ReplyTopicBook
from provider.task_stream import (
    REPLY_QUEUE_TIMEOUT_S,
    REPLY_TIMEOUT_S,
    KafkaResultSink,
    reply_producer,
    watch_reply_topics,
)
from service_kit.logs import bound_fields

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def settings(kafka_broker: KafkaBroker) -> KafkaSettings:
    """Task and results topics and a reply prefix of this test's own."""
    name = f"ethgw.test.replies-{uuid.uuid4().hex[:8]}"
    isolated = kafka_broker.settings.model_copy(
        update={
            "topic_read": f"{name}.read",
            "topic_write": f"{name}.write",
            "topic_results": f"{name}.results",
            "topic_replies_prefix": f"{name}.replies.",
            "task_partitions": 2,
            "result_partitions": 2,
        }
    )
    admin = AIOKafkaAdminClient(**client_options(isolated))
    await admin.start()
    try:
        names = [isolated.topic_read, isolated.topic_write, isolated.topic_results]
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()
    return isolated


@contextlib.asynccontextmanager
async def client(settings: KafkaSettings, instance_id: str) -> AsyncIterator[TaskClient]:
    async with kafka_producer(settings) as producer:
        tasks = TaskClient(settings, producer, instance_id=instance_id)
        await tasks.start()
        try:
            yield tasks
        finally:
            await tasks.stop()


@contextlib.asynccontextmanager
async def sink(
    settings: KafkaSettings, book: ReplyTopicBook | None = None
) -> AsyncIterator[KafkaResultSink]:
    """The provider's result sink, as the provider builds it; `book` replaces its rule."""
    async with kafka_producer(settings) as producer, reply_producer(settings) as replies:
        yield KafkaResultSink(
            producer,
            settings.topic_results,
            replies,
            settings.topic_replies_prefix,
            watch_reply_topics(replies, book),
        )


def succeeded(task: TaskMessage, reply_to: str | None) -> ResultMessage:
    return ResultMessage(
        task_id=task.task_id,
        operation=task.operation,
        status=TaskStatus.SUCCEEDED,
        data={"block_number": 7},
        reply_to=reply_to,
    )


@contextlib.asynccontextmanager
async def stand_in_provider(
    settings: KafkaSettings, book: ReplyTopicBook | None = None
) -> AsyncIterator[None]:
    """Answers every read task with a result addressed as the task asks."""

    async def answer(consumer: AIOKafkaConsumer, results: KafkaResultSink) -> None:
        async for record in consumer:
            task = decode(TaskMessage, record.value)
            await results.publish(succeeded(task, task.reply_to))

    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    consumer.assign([TopicPartition(settings.topic_read, p) for p in range(2)])
    await consumer.seek_to_beginning()
    try:
        async with sink(settings, book) as results:
            running = asyncio.create_task(answer(consumer, results))
            try:
                yield
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
    finally:
        await consumer.stop()


async def records_of(settings: KafkaSettings, topic: str) -> list[bytes]:
    """Every record of a topic so far."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    try:
        async with kafka_producer(settings) as producer:
            partitions = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                values += [r.value for records in batches.values() for r in records]
        return values
    finally:
        await consumer.stop()


def statuses(values: list[bytes], task_id: str) -> list[TaskStatus]:
    results = [decode(ResultMessage, v) for v in values]
    return [r.status for r in results if r.task_id == task_id]


async def test_a_result_reaches_the_instance_that_waits(settings: KafkaSettings) -> None:
    """run() gets its result through its own reply topic."""
    async with stand_in_provider(settings), client(settings, "a") as a:
        result = await a.run(new_task("chain.block_number", {}), 10.0)
    assert result is not None
    assert result.status is TaskStatus.SUCCEEDED


async def test_another_instance_receives_no_reply(settings: KafkaSettings) -> None:
    """Only the waiting instance's reply topic holds the result."""
    async with stand_in_provider(settings), client(settings, "a") as a, client(settings, "b"):
        await a.run(new_task("chain.block_number", {}), 10.0)
        other = await records_of(settings, settings.reply_topic("b"))
        own = await records_of(settings, settings.reply_topic("a"))
    assert (len(own), len(other)) == (1, 0)


async def test_any_instance_finds_a_finished_task(settings: KafkaSettings) -> None:
    """A task run by one instance is found by another, on the shared results topic."""
    async with stand_in_provider(settings), client(settings, "a") as a, client(settings, "b") as b:
        task = new_task("chain.block_number", {})
        await a.run(task, 10.0)
        found = await b.lookup(task.task_id)
    assert found is not None
    assert found.status is TaskStatus.SUCCEEDED


async def test_an_answered_task_writes_no_accepted_record(settings: KafkaSettings) -> None:
    """A wait that gets its result leaves only the result on the shared topic."""
    async with stand_in_provider(settings), client(settings, "a") as a:
        task = new_task("chain.block_number", {})
        await a.run(task, 10.0)
    shared = await records_of(settings, settings.topic_results)
    assert statuses(shared, task.task_id) == [TaskStatus.SUCCEEDED]


async def test_a_wait_that_runs_out_records_the_task_as_accepted(settings: KafkaSettings) -> None:
    """With no result in time, the task is on the shared topic as ACCEPTED for any instance."""
    async with client(settings, "a") as a, client(settings, "b") as b:
        task = new_task("chain.block_number", {})
        assert await a.run(task, 0.2) is None
        found = await b.lookup(task.task_id)
    assert found is not None
    assert found.status is TaskStatus.ACCEPTED


async def test_a_result_without_reply_to_is_found_by_a_wait(settings: KafkaSettings) -> None:
    """A result that names no reply topic (an older provider's) still ends a wait."""
    async with client(settings, "a") as a, sink(settings) as results:
        task = new_task("chain.block_number", {})
        await a.submit(task)
        await results.publish(succeeded(task, None))
        result = await a.wait(task.task_id, 0.5)
    assert result is not None
    assert result.status is TaskStatus.SUCCEEDED


async def test_only_reply_topics_are_written(settings: KafkaSettings) -> None:
    """A reply_to that is not a reply topic is not written to; the shared record is."""
    task = new_task("chain.block_number", {})
    async with sink(settings) as results:
        await results.publish(succeeded(task, settings.topic_read))
        await asyncio.sleep(0.5)
    assert await records_of(settings, settings.topic_read) == []
    assert statuses(await records_of(settings, settings.topic_results), task.task_id) == [
        TaskStatus.SUCCEEDED
    ]


async def test_stopping_a_client_deletes_its_reply_topic(settings: KafkaSettings) -> None:
    """A client's reply topic lives as long as the client."""
    async with client(settings, "gone"):
        pass
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert settings.reply_topic("gone") not in topics


async def test_a_reply_to_a_deleted_topic_holds_nothing_up(settings: KafkaSettings) -> None:
    """A result for an instance that stopped is published, and the provider still stops."""
    first, second = new_task("chain.block_number", {}), new_task("chain.block_number", {})
    async with asyncio.timeout(REPLY_TIMEOUT_S + 10.0):
        async with sink(settings) as results:
            async with client(settings, "a") as a:
                await a.submit(first)
                await results.publish(succeeded(first, a.reply_topic))
                assert await a.wait(first.task_id, 5.0) is not None  # the sink knows the topic
            await results.publish(succeeded(second, settings.reply_topic("a")))
    shared = await records_of(settings, settings.topic_results)
    assert statuses(shared, second.task_id) == [TaskStatus.SUCCEEDED]


def dropped(reason: DropReason) -> float:
    """ethgw_provider_replies_dropped_total for the reason, so far."""
    value = REGISTRY.get_sample_value(
        "ethgw_provider_replies_dropped_total", {"reason": reason.value}
    )
    return value or 0.0


async def until_dropped(reason: DropReason, count: float, timeout_s: float) -> float:
    """Seconds until the drops of `reason` reach `count` (TimeoutError after `timeout_s`)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while dropped(reason) < count:  # noqa: ASYNC110 (the sink's tasks count the drops)
            await asyncio.sleep(0.01)
    return time.monotonic() - started


def always_checked() -> ReplyTopicBook:
    """A rule whose checks vouch for no topic: every reply is checked. (The default vouches
    for 1 s; a reply to a topic deleted within it is the race tested further down.)"""
    return ReplyTopicBook(ttl_s=0.0)


@contextlib.asynccontextmanager
async def gone_instance(
    settings: KafkaSettings, book: ReplyTopicBook | None = None
) -> AsyncIterator[tuple[KafkaResultSink, str]]:
    """A sink that sent a reply to instance "a", and the reply topic of "a", which stopped."""
    async with sink(settings, book) as results:
        async with client(settings, "a") as a:
            task = new_task("chain.block_number", {})
            await a.submit(task)
            await results.publish(succeeded(task, a.reply_topic))
            assert await a.wait(task.task_id, 5.0) is not None
        await until_unlisted(settings, a.reply_topic)
        yield results, settings.reply_topic("a")


async def until_unlisted(settings: KafkaSettings, topic: str) -> None:
    """Wait until the broker's metadata no longer lists the deleted topic: deletion returns
    once the controller accepted it, and the broker may list the topic a moment longer."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        async with asyncio.timeout(10.0):
            while topic in await admin.list_topics():  # noqa: ASYNC110 (polls the broker)
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


def dropped_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        dict(bound_fields(r)) for r in caplog.records if bound_fields(r)["event"] == "reply_dropped"
    ]


def metadata_errors(caplog: pytest.LogCaptureFixture, topic: str) -> list[str]:
    """aiokafka's warnings and errors naming the topic (its missing metadata, its retries)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aiokafka")
        and r.levelno >= logging.WARNING
        and topic in r.getMessage()
    ]


async def replies_dropped(results: KafkaResultSink, topic: str, count: int) -> None:
    """Publish `count` replies to the gone `topic`; return once all are counted dropped."""
    before = dropped(DropReason.INSTANCE_GONE)
    for _ in range(count):
        await results.publish(succeeded(new_task("chain.block_number", {}), topic))
    await until_dropped(DropReason.INSTANCE_GONE, before + count, REPLY_TIMEOUT_S)


async def test_a_reply_to_a_stopped_instance_is_dropped_at_once(settings: KafkaSettings) -> None:
    """The reply is dropped within one metadata check, far below the producer's timeout."""
    async with gone_instance(settings, always_checked()) as (results, topic):
        before = dropped(DropReason.INSTANCE_GONE)
        await results.publish(succeeded(new_task("chain.block_number", {}), topic))
        elapsed = await until_dropped(DropReason.INSTANCE_GONE, before + 1, REPLY_TIMEOUT_S)
    assert elapsed < 1.0


async def test_replies_to_a_stopped_instance_are_logged_once(
    settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Five replies to a gone topic: five drops counted, one line naming the topic and why."""
    with caplog.at_level(logging.INFO):
        async with gone_instance(settings, always_checked()) as (results, topic):
            await replies_dropped(results, topic, 5)
    assert dropped_lines(caplog) == [
        {"event": "reply_dropped", "topic": topic, "reason": "instance_gone"}
    ]


async def test_a_reply_to_a_stopped_instance_makes_aiokafka_say_nothing(
    settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """No reply reaches the producer, so aiokafka never asks for the gone topic's metadata."""
    with caplog.at_level(logging.INFO):
        async with gone_instance(settings, always_checked()) as (results, topic):
            await replies_dropped(results, topic, 5)
            await asyncio.sleep(1.0)  # a retry loop would have logged ten lines by now
    assert metadata_errors(caplog, topic) == []


async def test_a_dropped_reply_leaves_the_result_in_the_task_store(
    settings: KafkaSettings,
) -> None:
    """The result of a task whose instance is gone is found by any other instance."""
    task = new_task("chain.block_number", {})
    async with gone_instance(settings, always_checked()) as (results, topic):
        before = dropped(DropReason.INSTANCE_GONE)
        await results.publish(succeeded(task, topic))
        await until_dropped(DropReason.INSTANCE_GONE, before + 1, REPLY_TIMEOUT_S)
    async with client(settings, "b") as b:
        found = await b.lookup(task.task_id)
    assert found is not None
    assert found.status is TaskStatus.SUCCEEDED


async def test_a_reply_sent_as_its_topic_goes_costs_one_line_of_aiokafka(
    settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply the last check vouched for, to a topic deleted since, expires in the producer:
    publish() is not held, aiokafka asks for the topic once, the drop is counted and logged."""
    vouching = ReplyTopicBook(ttl_s=600.0)
    with caplog.at_level(logging.INFO):
        async with gone_instance(settings, vouching) as (results, topic):
            before = dropped(DropReason.NOT_DELIVERED)
            started = time.monotonic()
            for _ in range(5):
                await results.publish(succeeded(new_task("chain.block_number", {}), topic))
            published_s = time.monotonic() - started
            await until_dropped(DropReason.NOT_DELIVERED, before + 1, REPLY_TIMEOUT_S + 10.0)
    assert published_s < 5 * REPLY_QUEUE_TIMEOUT_S + 1.0
    assert len([m for m in metadata_errors(caplog, topic) if "not found" in m]) <= 1
    # The first drop is logged: the one that expired, or a later reply found gone.
    assert [line["topic"] for line in dropped_lines(caplog)] == [topic]


async def test_a_reply_that_must_wait_for_its_batch_still_reaches_its_instance(
    settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies too large to share a batch, published at once, all reach their instance:
    one the producer cannot queue at once is sent from a task of its own, not dropped."""
    monkeypatch.setattr("provider.task_stream.REPLY_QUEUE_TIMEOUT_S", 0.0)
    tasks = [new_task("chain.block_number", {}) for _ in range(7)]
    large = {"accounts": ["0x" + "ab" * 20] * 2400}  # about 100 KB: three overfill a batch
    async with client(settings, "a") as a, sink(settings) as results:
        for task in tasks:
            await a.submit(task)
        topic = settings.reply_topic("a")
        # The first reply makes the sink check the topic: the next ones are sent at once.
        first = tasks.pop()
        await results.publish(succeeded(first, topic))
        assert await a.wait(first.task_id, 10.0) is not None
        before = dropped(DropReason.NOT_DELIVERED)
        answers = [succeeded(t, topic).model_copy(update={"data": large}) for t in tasks]
        await asyncio.gather(*(results.publish(answer) for answer in answers))
        for task in tasks:
            assert await a.wait(task.task_id, 10.0) is not None
        replied = await records_of(settings, topic)
    assert dropped(DropReason.NOT_DELIVERED) == before
    assert len(replied) == len(tasks) + 1


async def test_a_restarted_instance_gets_its_replies(settings: KafkaSettings) -> None:
    """An instance that restarts under its id gets replies, though its old topic was found gone."""
    async with stand_in_provider(settings, always_checked()):
        async with client(settings, "r") as r:
            assert await r.run(new_task("chain.block_number", {}), 10.0) is not None
        # A task of "r" answered while it is away: the provider finds its topic gone.
        before = dropped(DropReason.INSTANCE_GONE)
        orphan = new_task("chain.block_number", {})
        async with kafka_producer(settings) as producer:
            reply_to = settings.reply_topic("r")
            await publish(
                producer, settings.topic_read, orphan.model_copy(update={"reply_to": reply_to})
            )
        await until_dropped(DropReason.INSTANCE_GONE, before + 1, 10.0)
        async with client(settings, "r") as r:
            result = await r.run(new_task("chain.block_number", {}), 10.0)
    assert result is not None


async def test_an_instance_started_after_a_check_gets_its_replies(
    settings: KafkaSettings,
) -> None:
    """A topic created after the provider's last check (which lacked it) still gets replies."""
    async with stand_in_provider(settings), client(settings, "early") as early:
        assert await early.run(new_task("chain.block_number", {}), 10.0) is not None
        async with client(settings, "late") as late:
            result = await late.run(new_task("chain.block_number", {}), 10.0)
    assert result is not None
