"""The live part of the event streams: one tail per gateway instance, fanned out to every
open stream.

The hub knows nothing of where batches come from: `PollingTail` reads a page of the
contract's events for each new block range at the block interval (through the read
pipeline) and publishes it; another live source (a chain feed on Kafka) can publish to the
same hub instead. The tail runs only while a stream is open, and each publish is a
`put_nowait` per stream: a stream whose queue is full is dropped (it resumes with
Last-Event-ID), never waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ethgw_wire.events import ChainEvent
from gateway.event_pages import EventPages, EventSourceError, KeyViewers
from gateway.keys import ApiKey
from gateway.metrics import EVENT_STREAMS_DROPPED

log = logging.getLogger("ethgw.gateway")


@dataclass(frozen=True)
class EventBatch:
    """The events of blocks up to `to_block` after the previous batch's, in chain order."""

    to_block: int
    events: tuple[ChainEvent, ...]
    read_at: float  # time.monotonic() when they were read


class StreamDroppedError(Exception):
    """The stream fell a whole queue behind the live tail and was dropped."""


class Subscription:
    """One stream's share of the live tail: the batches after block `cursor`."""

    def __init__(self, cursor: int, capacity: int) -> None:
        self.cursor = cursor
        self.dropped = False
        self._queue: asyncio.Queue[EventBatch] = asyncio.Queue(capacity)

    def offer(self, batch: EventBatch) -> bool:
        """Queue a batch without waiting; False (and dropped) when the queue is full."""
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.dropped = True
            return False
        return True

    async def next(self, timeout_s: float) -> EventBatch | None:
        """The next batch, or None after `timeout_s` without one; StreamDroppedError once
        dropped (the batches still queued would leave a gap after them)."""
        if self.dropped:
            raise StreamDroppedError("the stream fell behind the live events")
        try:
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        except TimeoutError:
            return None


class EventHub:
    """The open streams' subscriptions and the last block the live tail covered."""

    def __init__(self, queue_batches: int) -> None:
        self._queue_batches = queue_batches
        self._subscriptions: set[Subscription] = set()
        self._waiting = 0  # streams waiting for the tail's first cursor
        self._cursor: int | None = None
        self._started = asyncio.Event()  # the tail has a cursor
        self._wanted = asyncio.Event()  # a stream is open

    @property
    def cursor(self) -> int | None:
        """The last block the tail covered; None while no stream is open."""
        return self._cursor

    async def subscribe(self) -> Subscription:
        """A subscription to the batches after the tail's cursor (waits for the tail to
        have one: its first read, after a time with no stream open)."""
        self._wanted.set()
        self._waiting += 1
        try:
            while self._cursor is None:
                self._started.clear()
                await self._started.wait()
        finally:
            self._waiting -= 1
        subscription = Subscription(self._cursor, self._queue_batches)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        self._idle_unless_wanted()

    def _idle_unless_wanted(self) -> None:
        if not self._subscriptions and not self._waiting:
            self._wanted.clear()

    async def wait_wanted(self) -> None:
        await self._wanted.wait()

    @property
    def wanted(self) -> bool:
        return self._wanted.is_set()

    def start(self, cursor: int) -> None:
        """The tail's first cursor: streams subscribe from here."""
        self._cursor = cursor
        self._started.set()

    def stop(self) -> None:
        """No stream is open: the next one starts from the head of its time."""
        self._cursor = None

    def publish(self, batch: EventBatch) -> None:
        """Offer a batch to every subscription; drop those that are a queue behind."""
        self._cursor = batch.to_block
        for subscription in list(self._subscriptions):
            if not subscription.offer(batch):
                self._subscriptions.discard(subscription)
                EVENT_STREAMS_DROPPED.labels("slow").inc()
                log.warning("event stream dropped reason=slow to_block=%d", batch.to_block)
        self._idle_unless_wanted()


class PollingTail:
    """The live source: at each block interval, the page of events after the hub's cursor,
    from the read pipeline, published to the hub; idle while no stream is open."""

    def __init__(self, hub: EventHub, pages: EventPages, interval_s: float) -> None:
        self._hub = hub
        self._pages = pages
        self._interval_s = interval_s
        self._failing = False

    async def run(self) -> None:
        while True:
            if not self._hub.wanted:
                self._hub.stop()
                await self._hub.wait_wanted()
            caught_up = await self._step()
            if caught_up:
                await asyncio.sleep(self._interval_s)

    async def _step(self) -> bool:
        """Read and publish one page; True when the tail is at the head (or failing)."""
        cursor = self._hub.cursor
        try:
            if cursor is None:
                page = await self._pages.page(0, 0)
                self._hub.start(page.head)
                self._recovered()
                return True
            page = await self._pages.page(cursor + 1)
        except EventSourceError as error:
            if not self._failing:
                log.warning("event tail failing error=%s", error)
            self._failing = True
            return True
        self._recovered()
        if page.to_block > cursor:
            self._hub.publish(EventBatch(page.to_block, page.events, page.read_at))
        return page.to_block >= page.head

    def _recovered(self) -> None:
        if self._failing:
            log.info("event tail recovered")
        self._failing = False


@dataclass
class StreamSlots:
    """The event streams each key holds open, bounded per key."""

    per_key: int
    open: dict[str, int] = field(default_factory=dict)

    def take(self, key_id: str) -> bool:
        if self.open.get(key_id, 0) >= self.per_key:
            return False
        self.open[key_id] = self.open.get(key_id, 0) + 1
        return True

    def release(self, key_id: str) -> None:
        left = self.open.get(key_id, 0) - 1
        if left > 0:
            self.open[key_id] = left
        else:
            self.open.pop(key_id, None)


@dataclass(frozen=True)
class EventStreams:
    """What the streams of one gateway share: the live hub, the pages of history, the
    keys' viewers and slots, and the limits."""

    hub: EventHub
    pages: EventPages
    viewers: KeyViewers
    slots: StreamSlots
    keepalive_s: float
    write_timeout_s: float
    source_timeout_s: float
    # Whether a key is still accepted: a stream of a revoked key is ended.
    key_accepted: Callable[[ApiKey], bool]
