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

from aiokafka import AIOKafkaProducer

from ethgw_wire.kafka import decode
from ethgw_wire.messages import ResultMessage
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_reader import TopicReader, partitions_of

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
        self._reader: TopicReader | None = None
        self._idle_watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._asked_at = 0.0

    @property
    def mirroring(self) -> bool:
        return self._reader is not None

    async def lookup(self, task_id: str) -> ResultMessage | None:
        """The latest status of a task (ACCEPTED, or its result) as the topic has it now."""
        self._asked_at = time.monotonic()
        async with self._lock:
            if self._reader is None:
                await self._start()
            reader = self._reader
        if reader is not None and not await reader.caught_up(SYNC_TIMEOUT_S):
            log.warning("results mirror behind after %.0fs", SYNC_TIMEOUT_S)
        known = self._latest.get(task_id)
        return None if known is None else decode(ResultMessage, known[2])

    async def stop(self) -> None:
        async with self._lock:
            await self._close()

    async def _start(self) -> None:
        reader = TopicReader(
            self._settings, lambda record: self._take(record.value), name="task-results"
        )
        partitions = await partitions_of(self._producer, self._settings.topic_results)
        await reader.start(partitions, since=time.time() - self._history_s)
        self._reader = reader
        self._idle_watch = asyncio.create_task(self._stop_when_idle(), name="results-idle")
        log.info("results mirror started partitions=%d", len(partitions))

    async def _stop_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._idle_s))
            if time.monotonic() - self._asked_at > self._idle_s:
                async with self._lock:
                    if time.monotonic() - self._asked_at > self._idle_s:
                        log.info("results mirror stopped idle_s=%.0f", self._idle_s)
                        await self._close()
                        return

    async def _close(self) -> None:
        reader, watch = self._reader, self._idle_watch
        self._reader, self._idle_watch = None, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if reader is not None:
            await reader.stop()
        self._latest.clear()

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
