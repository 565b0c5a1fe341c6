"""Every partition of some topics, read from a chosen start by a consumer of no group.

The one way this project reads a topic into memory: the compacted tables (from the
beginning), the results store (from a moment back), the fault suite's ledger (the task and
result topics from the beginning). Each gives the records to a callback of its own and
keeps them as it needs; `caught_up` waits until what was written before the call is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from ethgw_wire.kafka import FETCH_MAX_WAIT_MS, client_options, stop_to_the_end
from ethgw_wire.settings import KafkaSettings

Record: TypeAlias = ConsumerRecord[bytes, bytes]


async def partitions_of(producer: AIOKafkaProducer, topic: str) -> list[TopicPartition]:
    """The topic's partitions. The producer's partitions_for waits for metadata; the
    consumer's partitions_for_topic only reads what it already happens to have."""
    numbers = await producer.partitions_for(topic)
    return [TopicPartition(topic, n) for n in sorted(numbers)]


class TopicReader:
    def __init__(
        self,
        settings: KafkaSettings,
        on_record: Callable[[Record], None],
        *,
        name: str,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
    ) -> None:
        self._on_record = on_record
        self._name = name
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._partitions: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, partitions: Sequence[TopicPartition], since: float | None = None) -> None:
        """Read `partitions` from their beginning, or from the first record written at or
        after `since` (seconds since 1970; the end where there is none)."""
        await self._consumer.start()
        self._partitions = list(partitions)
        try:
            self._consumer.assign(self._partitions)
            if since is None:
                await self._consumer.seek_to_beginning(*self._partitions)
            else:
                await self._seek_to_time(since)
        except BaseException:  # nobody will stop a reader whose start failed
            await stop_to_the_end(self._consumer)
            raise
        self._task = asyncio.create_task(self._read(), name=self._name)

    async def _seek_to_time(self, since: float) -> None:
        moment_ms = int(since * 1000)
        starts = await self._consumer.offsets_for_times({tp: moment_ms for tp in self._partitions})
        ends = await self._consumer.end_offsets(self._partitions)
        for tp in self._partitions:
            found = starts.get(tp)
            self._consumer.seek(tp, found.offset if found is not None else ends[tp])

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stop_to_the_end(self._consumer)

    async def finished(self) -> None:
        """Wait while the reader reads; raises what ended the reading (a broker error)."""
        if self._task is not None:
            await self._task

    async def _read(self) -> None:
        async for record in self._consumer:
            self._on_record(record)

    async def caught_up(self, timeout_s: float) -> bool:
        """Wait until every record written before this call has been read; False when
        `timeout_s` passed first. A stopped reader has nothing left to read."""
        if self._task is None:
            return True
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + timeout_s
        while await self._behind(ends):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        if self._task is None:
            return False  # stopped meanwhile
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False
