"""A compacted Kafka topic mirrored in memory, so every instance sees every key.

Used for what services must share and keep: encrypted keystores (by address),
signed transactions (by task id) and node states (by node id). Writes go to
Kafka first (acks=all) and then into the local mirror. `TopicMirror` is the seam;
`CompactedTable` mirrors a real topic, `MemoryTable` keeps the values in this
process only (the monolith baseline, and tests of the logic above a mirror).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
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


class TopicMirror(ABC, Generic[M]):
    """Latest value per key of one topic; `sync()` waits until the mirror is current."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._data: dict[str, M] = {}
        self._changed = asyncio.Event()

    @abstractmethod
    async def start(self) -> None:
        """Begin mirroring (from the topic's first record)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop mirroring; what was mirrored stays readable."""

    @abstractmethod
    async def sync(self, timeout_s: float = 10.0) -> None:
        """Wait until every record written before this call is in the mirror."""

    @abstractmethod
    async def put(self, key: str, value: M) -> None:
        """Durably write, then mirror (so a read right after a write sees it)."""

    @abstractmethod
    async def delete(self, keys: Iterable[str]) -> None:
        """Durably write a tombstone per key, then forget the keys (every mirror does)."""

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


class CompactedTable(TopicMirror[M]):
    """A compacted Kafka topic mirrored by a consumer of all its partitions; writes
    go through the producer it was given."""

    def __init__(
        self, settings: KafkaSettings, topic: str, model: type[M], producer: AIOKafkaProducer
    ) -> None:
        super().__init__(topic)
        self._model = model
        self._producer = producer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self._partitions: list[TopicPartition] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        # The producer's partitions_for waits for metadata; the consumer's
        # partitions_for_topic only reads what it already happens to have.
        numbers = await self._producer.partitions_for(self.topic)
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

    async def put(self, key: str, value: M) -> None:
        await self._producer.send_and_wait(self.topic, encode(value), key=key.encode())
        self._data[key] = value

    async def delete(self, keys: Iterable[str]) -> None:
        chosen = list(keys)
        sends = [await self._producer.send(self.topic, None, key=key.encode()) for key in chosen]
        await asyncio.gather(*sends)
        for key in chosen:
            self._data.pop(key, None)


class MemoryTable(TopicMirror[M]):
    """A mirror of no topic: what is put lives in this process only, and is current."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def sync(self, timeout_s: float = 10.0) -> None:
        return None

    async def put(self, key: str, value: M) -> None:
        self._data[key] = value
        self._changed.set()

    async def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._data.pop(key, None)
        self._changed.set()
