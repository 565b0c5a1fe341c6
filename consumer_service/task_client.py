"""Submitting tasks and waiting for their results: what the read and write
services do for every request (and what tests and tools do too).

Every instance mirrors the results topic (from a recent point in time), so a
task's status can be asked of any instance, and a submitter's wait is a
future resolved by the mirror. Submitting also records an ACCEPTED status, so
a task that is still running is known, and an unknown id really is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ethgw_wire.kafka import FETCH_MAX_WAIT_MS, decode, publish
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.operations import get_operation
from ethgw_wire.settings import KafkaSettings

log = logging.getLogger("ethgw.tasks")

# How long every instance keeps each result for GET /tasks/{id} (and how far back it reads
# the results topic at start). Every instance mirrors every result of the platform: the
# soak showed an hour of them as parsed models growing each instance by ~2.4 KB per task,
# and 10 minutes as JSON bytes still growing it by 10% over a 10-minute soak.
RESULT_RETENTION_S = 300.0


class TaskClient:
    def __init__(
        self,
        settings: KafkaSettings,
        producer: AIOKafkaProducer,
        *,
        history_s: float = RESULT_RETENTION_S,
        cache_size: int = 100_000,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._history_s = history_s
        self._cache_size = cache_size
        # task id -> (done, when mirrored, the record's JSON): bytes, not models, because
        # every instance mirrors every result and a parsed model costs ~5x its JSON.
        self._latest: OrderedDict[str, tuple[bool, float, bytes]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[ResultMessage]]] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        topic = self._settings.topic_results
        # The producer's partitions_for waits for metadata; the consumer's
        # partitions_for_topic only reads what it already happens to have.
        numbers = await self._producer.partitions_for(topic)
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        self._consumer.assign(partitions)
        since_ms = int((time.time() - self._history_s) * 1000)
        starts = await self._consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = await self._consumer.end_offsets(partitions)
        for tp in partitions:
            found = starts.get(tp)
            self._consumer.seek(tp, found.offset if found is not None else ends[tp])
        self._reader = asyncio.create_task(self._read(), name="task-results")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._consumer.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()

    async def _read(self) -> None:
        async for record in self._consumer:
            try:
                result = decode(ResultMessage, record.value)
            except ValueError:
                continue
            self._remember(result, record.value or b"")

    def _remember(self, result: ResultMessage, raw: bytes) -> None:
        known = self._latest.get(result.task_id)
        if known is not None and known[0] and not result.done:
            return  # an ACCEPTED record read after the final one changes nothing
        now = time.monotonic()
        self._latest[result.task_id] = (result.done, now, raw)
        self._latest.move_to_end(result.task_id)
        self._forget_old(now)
        if result.done:
            for future in self._waiters.pop(result.task_id, []):
                if not future.done():
                    future.set_result(result)

    def _forget_old(self, now: float) -> None:
        """Keep `history_s` of results, and at most `cache_size` (oldest go first)."""
        while self._latest:
            _, (_, at, _) = next(iter(self._latest.items()))
            if len(self._latest) <= self._cache_size and now - at <= self._history_s:
                return
            self._latest.popitem(last=False)

    def topic_for(self, task: TaskMessage) -> str:
        operation = get_operation(task.operation)
        return self._settings.topic_write if operation.is_write else self._settings.topic_read

    async def submit(self, task: TaskMessage, topic: str | None = None) -> None:
        """Put the task on Kafka (acknowledged) and record it as accepted; the topic
        follows from the operation unless given."""
        # The task first: an ACCEPTED record then always means the task is on Kafka. (The
        # other order left an ACCEPTED record for a task that never ran when the service
        # died between the two, as the fault suite's kill of a service instance showed.)
        await self._publish_task(task, topic)
        await self._publish_accepted(task)

    async def run(self, task: TaskMessage, timeout_s: float) -> ResultMessage | None:
        """Submit and wait; None when the wait ran out (the task goes on).

        The ACCEPTED record is acknowledged while the task runs, not before: it only has
        to follow the task, and a caller that waits for the result needs no receipt of it.
        """
        future = self._wait_for(task.task_id)
        await self._publish_task(task)
        accepted = asyncio.create_task(self._publish_accepted(task))
        try:
            return await self._await(task.task_id, future, timeout_s)
        finally:
            await accepted

    async def _publish_task(self, task: TaskMessage, topic: str | None = None) -> None:
        await publish(self._producer, topic or self.topic_for(task), task, key=task.account)

    async def _publish_accepted(self, task: TaskMessage) -> None:
        accepted = ResultMessage(
            task_id=task.task_id,
            operation=task.operation,
            status=TaskStatus.ACCEPTED,
            request_id=task.request_id,
        )
        await publish(self._producer, self._settings.topic_results, accepted, key=task.task_id)

    async def wait(self, task_id: str, timeout_s: float) -> ResultMessage | None:
        """The final result of a submitted task, or None after `timeout_s`."""
        known = self.lookup(task_id)
        if known is not None and known.done:
            return known
        return await self._await(task_id, self._wait_for(task_id), timeout_s)

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

    def lookup(self, task_id: str) -> ResultMessage | None:
        """The latest known status of a task (ACCEPTED, or its result), while it is kept."""
        known = self._latest.get(task_id)
        return None if known is None else decode(ResultMessage, known[2])
