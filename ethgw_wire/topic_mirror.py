"""A compacted Kafka topic mirrored in memory, so every instance sees every key.

Used for what services must share and keep: encrypted keystores (by address),
signed transactions (by task id) and node states (by node id). Writes go to
Kafka first (acks=all) and then into the local mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError

from ethgw_wire.kafka import FETCH_MAX_WAIT_MS, decode, encode
from ethgw_wire.settings import KafkaSettings

log = logging.getLogger("ethgw.kafka.table")

M = TypeVar("M", bound=BaseModel)


class TableSyncTimeoutError(TimeoutError):
    """The mirror did not reach the topic's end in time."""


class CompactedTable(Generic[M]):
    """Latest value per key of one topic; `sync()` waits until the mirror is current."""

    def __init__(self, settings: KafkaSettings, topic: str, model: type[M]) -> None:
        self.topic = topic
        self._model = model
        self._data: dict[str, M] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self._partitions: list[TopicPartition] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, producer: AIOKafkaProducer) -> None:
        await self._consumer.start()
        # The producer's partitions_for waits for metadata; the consumer's
        # partitions_for_topic only reads what it already happens to have.
        numbers = await producer.partitions_for(self.topic)
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._reader = asyncio.create_task(self._read(), name=f"table:{self.topic}")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._consumer.stop()

    async def _read(self) -> None:
        async for record in self._consumer:
            key = record.key.decode() if record.key else ""
            if record.value is None:
                self._data.pop(key, None)
            else:
                try:
                    self._data[key] = decode(self._model, record.value)
                except ValidationError as exc:
                    log.warning(
                        "table record skipped topic=%s key=%s error=%s",
                        self.topic,
                        key,
                        exc.errors()[0]["msg"],
                    )
            self._changed.set()

    async def sync(self, timeout_s: float = 10.0) -> None:
        """Wait until every record written before this call is in the mirror."""
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await self._reached(ends):
            if asyncio.get_running_loop().time() > deadline:
                raise TableSyncTimeoutError(f"{self.topic} not in sync after {timeout_s}s")
            await asyncio.sleep(0.01)

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def wait_changed(self, timeout_s: float) -> None:
        """Return when a record arrives, or after `timeout_s`."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def get(self, key: str) -> M | None:
        return self._data.get(key)

    def items(self) -> list[tuple[str, M]]:
        return list(self._data.items())

    def __len__(self) -> int:
        return len(self._data)

    async def put(self, producer: AIOKafkaProducer, key: str, value: M) -> None:
        """Durably write, then mirror (so a read right after a write sees it)."""
        await producer.send_and_wait(self.topic, encode(value), key=key.encode())
        self._data[key] = value

    async def delete(self, producer: AIOKafkaProducer, keys: Iterable[str]) -> None:
        """Durably write a tombstone per key, then forget the keys (every mirror does)."""
        chosen = list(keys)
        sends = [await producer.send(self.topic, None, key=key.encode()) for key in chosen]
        await asyncio.gather(*sends)
        for key in chosen:
            self._data.pop(key, None)
