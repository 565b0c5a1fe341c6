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

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ValidationError

from ethgw_wire.kafka import decode, encode
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_reader import Record, TopicReader, partitions_of

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
    """A compacted Kafka topic mirrored from its beginning; writes go through the
    producer it was given."""

    def __init__(
        self, settings: KafkaSettings, topic: str, model: type[M], producer: AIOKafkaProducer
    ) -> None:
        super().__init__(topic)
        self._model = model
        self._producer = producer
        self._reader = TopicReader(settings, self._take, name=f"table:{topic}")

    async def start(self) -> None:
        await self._reader.start(await partitions_of(self._producer, self.topic))

    async def stop(self) -> None:
        await self._reader.stop()

    def _take(self, record: Record) -> None:
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
        if not await self._reader.caught_up(timeout_s):
            raise TableSyncTimeoutError(f"{self.topic} not in sync after {timeout_s}s")

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
