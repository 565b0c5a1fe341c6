"""Tasks waiting in Kafka: the providers' consumer lag on the task topics, asked of the broker.

Lag of a partition = its end offset - the offset the providers' group committed there (a
partition the group never committed counts from its first offset). The providers commit
after a task's result is out, so the lag counts tasks queued or being worked on: while LBH
pauses dispatching it grows, which is what the operator wants to see.

Measured on demand and never waited for by the dashboard or a Prometheus scrape: `latest()`
answers the last reading at once and, when it is older than `cache_s`, starts one
measurement in the background (several open dashboards cost one measurement a period;
nothing runs while nobody looks). The four broker round trips take 40-250 ms on a loaded
machine, which would otherwise be added to every poll. The clients connect on first use and
are dropped after a failure, so a broker that was down is found again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ethgw_wire.kafka import client_options, stop_to_the_end
from ethgw_wire.settings import KafkaSettings
from gateway.background import BackgroundRefresh
from gateway.metrics import KAFKA_LAG

log = logging.getLogger("ethgw.gateway")


@dataclass(frozen=True)
class LagReading:
    """The lag per task topic, or why it could not be measured."""

    group: str
    topics: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    measured_at: float = 0.0

    @property
    def total(self) -> int | None:
        return None if self.error is not None else sum(self.topics.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "topics": self.topics,
            "total": self.total,
            "error": self.error,
            "measured_at": self.measured_at,
        }


class LagProbe:
    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: tuple[str, ...],
        timeout_s: float = 2.0,
        cache_s: float = 1.0,
    ) -> None:
        self._kafka = kafka
        self._group_id = group_id
        self._topics = topics
        self._timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._last: LagReading | None = None
        self._refresh = BackgroundRefresh("gateway-kafka-lag", cache_s)

    def latest(self) -> LagReading:
        """The last reading, at once; a fresh one is measured in the background when it is
        older than `cache_s` (the first call answers "not measured yet")."""
        last = self._last
        self._refresh.kick(None if last is None else last.measured_at, self.measure)
        if last is None:
            return LagReading(self._group_id, error="not measured yet", measured_at=time.time())
        return last

    async def measure(self) -> LagReading:
        """The lag now, or at most `cache_s` old."""
        async with self._lock:
            last = self._last
            if last is not None and self._refresh.is_fresh(last.measured_at):
                return last
            reading = await self._measure()
            if (reading.error is None) != (last is None or last.error is None):
                if reading.error is None:
                    log.info("kafka lag measurable again group=%s", self._group_id)
                else:
                    log.warning(
                        "kafka lag not measurable group=%s error=%s", self._group_id, reading.error
                    )
            self._last = reading
            return reading

    async def aclose(self) -> None:
        await self._refresh.aclose()
        await self._drop_clients()

    async def _measure(self) -> LagReading:
        try:
            async with asyncio.timeout(self._timeout_s):
                topics = await self._lag_by_topic()
        except TimeoutError:
            await self._drop_clients()
            return self._failed(f"Kafka did not answer within {self._timeout_s:.0f} s")
        except Exception as error:  # any client failure: say it, reconnect next time
            await self._drop_clients()
            return self._failed(f"{type(error).__name__}: {error}"[:200])
        for topic, lag in topics.items():
            KAFKA_LAG.labels(self._group_id, topic).set(lag)
        return LagReading(self._group_id, topics, measured_at=time.time())

    def _failed(self, error: str) -> LagReading:
        return LagReading(self._group_id, error=error, measured_at=time.time())

    async def _lag_by_topic(self) -> dict[str, int]:
        consumer, admin = await self._clients()
        # Asked every time: partitions added since the last look are counted too.
        described = await admin.describe_topics(list(self._topics))
        partitions = [
            TopicPartition(entry["topic"], part["partition"])
            for entry in described
            if entry.get("error_code", 0) == 0 and entry["topic"] in self._topics
            for part in entry.get("partitions", [])
        ]
        if not partitions:
            return dict.fromkeys(self._topics, 0)
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self._group_id, partitions=partitions)
        done = {
            partition: mark.offset
            for partition, mark in committed.items()
            if mark is not None and mark.offset >= 0
        }
        # A partition the group never committed: everything still in it is waiting.
        uncommitted = [p for p in partitions if p not in done]
        if uncommitted:
            done.update(await consumer.beginning_offsets(uncommitted))
        lag = dict.fromkeys(self._topics, 0)
        for partition in partitions:
            lag[partition.topic] += max(0, ends[partition] - done[partition])
        return lag

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            options = client_options(self._kafka)
            # No group: this consumer only reads offsets, it never joins the providers.
            consumer = AIOKafkaConsumer(**options, group_id=None, isolation_level="read_committed")
            admin = AIOKafkaAdminClient(**options)
            self._consumer, self._admin = consumer, admin
            await consumer.start()
            await admin.start()
        return self._consumer, self._admin

    async def _drop_clients(self) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        for client in (consumer, admin):
            if client is not None:
                with contextlib.suppress(Exception):  # it failed already; closing is best effort
                    await (
                        stop_to_the_end(client)
                        if isinstance(client, AIOKafkaConsumer)
                        else client.close()
                    )
