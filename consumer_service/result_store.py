"""The shared results topic, read only while someone asks about a task.

Every final result (and the ACCEPTED record of a task whose wait ran out) is on the
results topic, keyed by task id, so any instance can answer GET /tasks/{id}. Mirroring
it all the time would make every instance consume and parse every result of the
platform; instead the mirror starts at the first lookup (reading back `history_s`) and
stops after `idle_s` without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ethgw_wire.kafka import FETCH_MAX_WAIT_MS, decode
from ethgw_wire.messages import ResultMessage
from ethgw_wire.settings import KafkaSettings

log = logging.getLogger("ethgw.tasks")

# How long each result is kept for GET /tasks/{id} (and how far back the mirror reads at
# its start). The soak showed an hour of results as parsed models growing an instance by
# ~2.4 KB per task, so results are kept as their JSON bytes, for 5 minutes.
RESULT_RETENTION_S = 300.0
IDLE_S = 60.0
SYNC_TIMEOUT_S = 5.0


class ResultStore:
    def __init__(
        self,
        settings: KafkaSettings,
        producer: AIOKafkaProducer,
        *,
        history_s: float = RESULT_RETENTION_S,
        cache_size: int = 100_000,
        idle_s: float = IDLE_S,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._history_s = history_s
        self._cache_size = cache_size
        self._idle_s = idle_s
        # task id -> (done, when mirrored, the record's JSON)
        self._latest: OrderedDict[str, tuple[bool, float, bytes]] = OrderedDict()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._asked_at = 0.0

    @property
    def mirroring(self) -> bool:
        return self._reader is not None

    async def lookup(self, task_id: str) -> ResultMessage | None:
        """The latest status of a task (ACCEPTED, or its result) as the topic has it now."""
        self._asked_at = time.monotonic()
        async with self._lock:
            if self._consumer is None:
                await self._start()
            consumer = self._consumer
        if consumer is not None:
            await self._catch_up(consumer)
        known = self._latest.get(task_id)
        return None if known is None else decode(ResultMessage, known[2])

    async def stop(self) -> None:
        async with self._lock:
            await self._close()

    async def _start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        topic = self._settings.topic_results
        # The producer's partitions_for waits for metadata; the consumer's
        # partitions_for_topic only reads what it already happens to have.
        numbers = await self._producer.partitions_for(topic)
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        since_ms = int((time.time() - self._history_s) * 1000)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        self._consumer, self._partitions = consumer, partitions
        self._reader = asyncio.create_task(self._read(consumer), name="task-results")
        log.info("results mirror started partitions=%d", len(partitions))

    async def _close(self) -> None:
        reader, consumer = self._reader, self._consumer
        self._reader, self._consumer = None, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if consumer is not None:
            await consumer.stop()
        self._latest.clear()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    self._take(record.value)
            if time.monotonic() - self._asked_at > self._idle_s:
                async with self._lock:
                    if time.monotonic() - self._asked_at > self._idle_s:
                        log.info("results mirror stopped idle_s=%.0f", self._idle_s)
                        await self._close()
                        return

    def _take(self, raw: bytes | None) -> None:
        try:
            result = decode(ResultMessage, raw)
        except ValueError:
            return
        self.remember(result, raw or b"")

    def remember(self, result: ResultMessage, raw: bytes) -> None:
        """Keep a record's JSON as the task's latest status."""
        known = self._latest.get(result.task_id)
        if known is not None and known[0] and not result.done:
            return  # an ACCEPTED record read after the final one changes nothing
        now = time.monotonic()
        self._latest[result.task_id] = (result.done, now, raw)
        self._latest.move_to_end(result.task_id)
        self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        """Keep `history_s` of results, and at most `cache_size` (oldest go first)."""
        while self._latest:
            _, (_, at, _) = next(iter(self._latest.items()))
            if len(self._latest) <= self._cache_size and now - at <= self._history_s:
                return
            self._latest.popitem(last=False)

    def known(self, task_id: str) -> ResultMessage | None:
        """What the mirror holds now, without reading the topic."""
        known = self._latest.get(task_id)
        return None if known is None else decode(ResultMessage, known[2])

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        """Wait until every record written before this call is mirrored (bounded)."""
        ends = await consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while await self._behind(consumer, ends):
            if time.monotonic() > deadline:
                log.warning("results mirror behind after %.0fs", SYNC_TIMEOUT_S)
                return
            await asyncio.sleep(0.01)

    def _mirrors(self, consumer: object) -> bool:
        return consumer is self._consumer

    async def _behind(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        if not self._mirrors(consumer):
            return False  # stopped meanwhile
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return True
        return False
