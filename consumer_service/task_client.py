"""Submitting tasks and waiting for their results: what the read and write services do
for every request (and what tests and tools do too).

Each client has a reply topic of its own, named in every task it submits (`reply_to`);
providers publish a task's result there and on the shared results topic. A waiter is a
future that the reader of the reply topic resolves, so an instance consumes and parses
only the results it waits for. The shared topic is read on demand (`ResultStore`), for
GET /tasks/{id}.

The task itself is the proof of acceptance: it is acknowledged on Kafka before an
instance answers, and every task on Kafka gets a final result. An ACCEPTED record is
written only when a wait runs out, so that any instance can answer "pending" for the id
the client was given.

Secret parameters (passwords) never go on Kafka in clear: every task is sealed here, with
the providers' public key, just before it is published (ethgw_wire/sealing.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict

from aiokafka import AIOKafkaProducer

from consumer_service.reply_topic import create_reply_topic, delete_reply_topic
from consumer_service.result_store import RESULT_RETENTION_S, ResultStore
from ethgw_wire.kafka import decode, publish
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.operations import get_operation
from ethgw_wire.sealing import TaskSealer
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_reader import Record, TopicReader, partitions_of

log = logging.getLogger("ethgw.tasks")

# Replies kept after their wait, for a wait() that comes after its reply (submit, then
# wait) and for a lookup of a task this client ran; as JSON bytes, the oldest go first.
REPLIES_KEPT = 10_000


class TaskClient:
    def __init__(
        self,
        settings: KafkaSettings,
        producer: AIOKafkaProducer,
        *,
        instance_id: str | None = None,
        history_s: float = RESULT_RETENTION_S,
        cache_size: int = 100_000,
        sealer: TaskSealer | None = None,
    ) -> None:
        """`sealer` None: the one of the platform's sealing folder (SealingSettings)."""
        self._settings = settings
        self._sealer = sealer if sealer is not None else TaskSealer.of_folder()
        self._producer = producer
        self.reply_topic = settings.reply_topic(instance_id or f"client-{uuid.uuid4().hex[:12]}")
        self._store = ResultStore(settings, producer, history_s=history_s, cache_size=cache_size)
        self._replies: OrderedDict[str, bytes] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[ResultMessage]]] = {}
        self._reader = TopicReader(settings, self._take_reply, name="task-replies")

    @property
    def store(self) -> ResultStore:
        return self._store

    async def start(self) -> None:
        """Create the reply topic and read it from its end: replies to an earlier run
        under the same id have no waiter here."""
        await create_reply_topic(self._settings, self.reply_topic)
        partitions = await partitions_of(self._producer, self.reply_topic)
        await self._reader.start(partitions, since=time.time())

    async def stop(self) -> None:
        await self._reader.stop()
        await self._store.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        await delete_reply_topic(self._settings, self.reply_topic)

    def _take_reply(self, record: Record) -> None:
        try:
            result = decode(ResultMessage, record.value)
        except ValueError:
            return
        self._keep_reply(result.task_id, record.value or b"")
        for future in self._waiters.pop(result.task_id, []):
            if not future.done():
                future.set_result(result)

    def _keep_reply(self, task_id: str, raw: bytes) -> None:
        self._replies[task_id] = raw
        self._replies.move_to_end(task_id)
        while len(self._replies) > REPLIES_KEPT:
            self._replies.popitem(last=False)

    def addressed(self, task: TaskMessage) -> TaskMessage:
        """The task with this client's reply topic as its `reply_to`."""
        if task.reply_to == self.reply_topic:
            return task
        return task.model_copy(update={"reply_to": self.reply_topic})

    def topic_for(self, task: TaskMessage) -> str:
        operation = get_operation(task.operation)
        return self._settings.topic_write if operation.is_write else self._settings.topic_read

    async def submit(self, task: TaskMessage, topic: str | None = None) -> None:
        """Put the task on Kafka (acknowledged) and record it as accepted, for a caller
        that does not wait; the topic follows from the operation unless given."""
        # The task first: an ACCEPTED record then always means the task is on Kafka.
        task = self.addressed(task)
        await self._publish_task(task, topic)
        await self._publish_accepted(task)

    async def run(self, task: TaskMessage, timeout_s: float) -> ResultMessage | None:
        """Submit and wait; None when the wait ran out (the task goes on, recorded as
        accepted before this returns, so any instance can answer for its id)."""
        task = self.addressed(task)
        future = self._wait_for(task.task_id)
        await self._publish_task(task)
        result = await self._await(task.task_id, future, timeout_s)
        if result is None:
            await self._publish_accepted(task)
        return result

    async def _publish_task(self, task: TaskMessage, topic: str | None = None) -> None:
        sealed = self._sealer.seal_task(task)
        await publish(self._producer, topic or self.topic_for(task), sealed, key=task.account)

    async def _publish_accepted(self, task: TaskMessage) -> None:
        accepted = ResultMessage(
            task_id=task.task_id,
            operation=task.operation,
            status=TaskStatus.ACCEPTED,
            request_id=task.request_id,
        )
        await publish(self._producer, self._settings.topic_results, accepted, key=task.task_id)

    async def wait(self, task_id: str, timeout_s: float) -> ResultMessage | None:
        """The final result of a submitted task, or None after `timeout_s`. A task that
        named no reply topic of this client is found on the shared topic at the end."""
        replied = self._replies.get(task_id)
        if replied is not None:
            return decode(ResultMessage, replied)
        result = await self._await(task_id, self._wait_for(task_id), timeout_s)
        if result is not None:
            return result
        known = await self._store.lookup(task_id)
        return known if known is not None and known.done else None

    def _wait_for(self, task_id: str) -> asyncio.Future[ResultMessage]:
        future: asyncio.Future[ResultMessage] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        return future

    async def _await(
        self, task_id: str, future: asyncio.Future[ResultMessage], timeout_s: float
    ) -> ResultMessage | None:
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            waiting = self._waiters.get(task_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(task_id, None)
            return None

    async def lookup(self, task_id: str) -> ResultMessage | None:
        """The latest known status of a task (ACCEPTED, or its result), while it is kept:
        from this client's replies, else from the shared results topic."""
        replied = self._replies.get(task_id)
        if replied is not None:
            return decode(ResultMessage, replied)
        return await self._store.lookup(task_id)
