"""The chain-heads topic, read by this gateway from its end (no consumer group: every
gateway instance reads all of it), each block handed to the subscription hub.

Started on the first subscription that needs blocks, not with the app: a gateway that
serves no subscription never connects to Kafka. While Kafka cannot be reached it tries
again every `retry_s`; the subscriptions stay open and, once it is back, get every block
from the last one read on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import TopicPartition
from pydantic import ValidationError

from ethgw_wire.chain_heads import ChainHead
from ethgw_wire.kafka import decode
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_reader import Record, TopicReader

log = logging.getLogger("ethgw.gateway")


class ChainStream:
    def __init__(
        self,
        settings: KafkaSettings,
        on_head: Callable[[ChainHead], object],
        retry_s: float = 2.0,
    ) -> None:
        self._settings = settings
        self._on_head = on_head
        self._retry_s = retry_s
        self._task: asyncio.Task[None] | None = None
        self._last_record_at: float | None = None  # broker time of the last record read
        self.connected = asyncio.Event()

    def ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-chain-stream")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_record(self, record: Record) -> None:
        self._last_record_at = record.timestamp / 1000
        try:
            head = decode(ChainHead, record.value)
        except ValidationError as error:
            log.warning("chain head unreadable offset=%d error=%s", record.offset, error)
            return
        self._on_head(head)

    async def _run(self) -> None:
        partition = TopicPartition(self._settings.topic_chain_heads, 0)
        while True:
            reader = TopicReader(self._settings, self._on_record, name="gateway-chain-heads")
            try:
                # From the end: a subscription gets the blocks made after it. After a broker
                # failure, from the last record read (a repeat the hub drops), so no gap.
                since = self._last_record_at if self._last_record_at is not None else time.time()
                await reader.start([partition], since=since)
                log.info("chain heads stream started topic=%s", partition.topic)
                self.connected.set()
                await reader.finished()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("chain heads stream failed retry_s=%.1f error=%r", self._retry_s, error)
            finally:
                self.connected.clear()
                await reader.stop()
            await asyncio.sleep(self._retry_s)
