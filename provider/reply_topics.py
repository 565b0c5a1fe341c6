"""Which reply topics exist, so that a reply to an instance that stopped costs nothing.

An instance creates its reply topic, and waits until the broker's metadata shows it, before
it submits any task naming it (`TaskClient.start`). So a metadata check that starts after a
reply is ready sees the topic if it still exists: a topic missing from such a check is gone,
with its instance, and the reply is dropped. A check vouches for a topic it saw only for
`CHECK_TTL_S`, since an instance may stop at any time.

`ReplyTopicBook` is the rule (plain data, time passed in); `ReplyTopics` asks the broker,
through the reply producer's own client, one check at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiokafka.errors import KafkaError

log = logging.getLogger("ethgw.provider")

# How long a check's sight of a topic lets replies go there without asking again. A reply
# sent to a topic deleted within this window waits in the producer until it expires.
CHECK_TTL_S = 1.0
# Topics whose drop was logged, remembered so that each is logged once (the oldest go first).
ANNOUNCED_KEPT = 1024


class DropReason(StrEnum):
    """Why a reply was not delivered (the label of ethgw_provider_replies_dropped_total)."""

    INSTANCE_GONE = "instance_gone"  # its reply topic does not exist: the instance stopped
    NOT_DELIVERED = "not_delivered"  # sent, and expired or refused in the producer
    NOT_A_REPLY_TOPIC = "not_a_reply_topic"  # the task named a topic without the reply prefix


@dataclass(frozen=True)
class TopicCheck:
    """The topics the broker had, as asked at `started_at` (monotonic seconds)."""

    started_at: float
    existing: frozenset[str]


class ReplyTopicBook:
    """What the checks so far say of each reply topic, and which topics were sent to."""

    def __init__(self, ttl_s: float = CHECK_TTL_S, announced_kept: int = ANNOUNCED_KEPT) -> None:
        self._ttl_s = ttl_s
        self._last: TopicCheck | None = None
        self._not_before = float("-inf")
        self._tracked: set[str] = set()
        # Tracked topics the producer's metadata has shown: only those can vanish from it
        # (an update asked before a topic was tracked does not name it).
        self._followed: set[str] = set()
        self._announced: OrderedDict[str, None] = OrderedDict()
        self._announced_kept = announced_kept

    def known(self, topic: str, ready_at: float, now: float) -> bool | None:
        """True: the topic exists; False: it is gone; None: a new check must say."""
        last = self._last
        if last is None:
            return None
        if topic in last.existing:
            return True if now - last.started_at <= self._ttl_s else None
        # Missing from a check that began after the reply was ready: its instance had
        # created the topic before submitting the task, so the topic was deleted since.
        return False if last.started_at >= ready_at else None

    def record(self, check: TopicCheck) -> bool:
        """Keep the newest check; True when it showed a tracked topic gone (no longer tracked)."""
        if check.started_at < self._not_before:
            return False
        if self._last is not None and check.started_at < self._last.started_at:
            return False
        self._last = check
        for topic in check.existing:
            self._announced.pop(topic, None)
        return self._untrack(self._tracked - check.existing)

    def vanished(self, present: Iterable[str], now: float) -> bool:
        """The producer's metadata now has `present`: a tracked topic it showed before and
        lacks now is no longer tracked, and no check begun before `now` vouches for any
        topic (the producer may have been answered during a broker's restart, so this
        never says a topic is gone). True when there was such a topic."""
        shown = set(present)
        gone = self._followed - shown
        self._followed |= self._tracked & shown
        if gone:
            self._last = None
            self._not_before = now
        return self._untrack(gone)

    def track(self, topic: str) -> None:
        """A reply goes to `topic`: the producer now follows its metadata."""
        self._tracked.add(topic)

    @property
    def tracked(self) -> frozenset[str]:
        return frozenset(self._tracked)

    def first_drop(self, topic: str) -> bool:
        """True for the first drop to `topic` since a check last saw it."""
        if topic in self._announced:
            return False
        self._announced[topic] = None
        while len(self._announced) > self._announced_kept:
            self._announced.popitem(last=False)
        return True

    def _untrack(self, gone: set[str]) -> bool:
        self._tracked -= gone
        self._followed -= gone
        return bool(gone)


class MetadataClient(Protocol):
    """What `ReplyTopics` needs of the reply producer's client (aiokafka's AIOKafkaClient)."""

    async def fetch_all_metadata(self) -> _ClusterView: ...

    def set_topics(self, topics: Iterable[str]) -> object: ...


class _ClusterView(Protocol):
    def topics(self) -> set[str]: ...


@dataclass(frozen=True)
class _Running:
    started_at: float
    task: asyncio.Task[TopicCheck | None]


class ReplyTopics:
    """The reply topics the broker has, checked on demand, one check at a time; every reply
    ready before a check started is answered by it. The producer's client is told to stop
    following the metadata of a topic once it is gone, so it stops asking (and logging)."""

    def __init__(
        self,
        client: MetadataClient,
        book: ReplyTopicBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._book = book if book is not None else ReplyTopicBook()
        self._clock = clock
        self._running: _Running | None = None

    @property
    def book(self) -> ReplyTopicBook:
        return self._book

    def now(self) -> float:
        return self._clock()

    def known(self, topic: str, ready_at: float) -> bool | None:
        """What the last check says, without asking (None: ask with `exists`)."""
        return self._book.known(topic, ready_at, self._clock())

    async def exists(self, topic: str, ready_at: float, *, recheck: bool = False) -> bool:
        """Whether the topic exists, by a check that started at or after `ready_at` unless
        a recent one already says (with `recheck`, only a gone topic is taken as said). A
        check that fails says yes: the reply is tried."""
        known = self.known(topic, ready_at)
        if known is False or (known and not recheck):
            return known
        check = await self._check_since(ready_at)
        return check is None or topic in check.existing

    def track(self, topic: str) -> None:
        self._book.track(topic)

    def metadata_updated(self, present: Iterable[str]) -> None:
        """The producer refreshed its metadata (a listener of its cluster): a tracked topic
        it did not find is no longer followed, and must be checked before its next reply."""
        if self._book.vanished(present, self._clock()):
            self._client.set_topics(self._book.tracked)

    async def _check_since(self, since: float) -> TopicCheck | None:
        while True:
            running = self._running
            if running is None or running.task.done():
                running = self._running = self._start_check()
            if running.started_at >= since:
                return await asyncio.shield(running.task)
            # Started before this reply was ready: the next check answers it.
            await asyncio.wait([running.task])

    def _start_check(self) -> _Running:
        started_at = self._clock()
        return _Running(started_at, asyncio.create_task(self._check(started_at)))

    async def _check(self, started_at: float) -> TopicCheck | None:
        try:
            cluster = await self._client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            log.info("reply topics not checked error=%r", exc)
            return None
        check = TopicCheck(started_at, frozenset(cluster.topics()))
        if self._book.record(check):
            self._client.set_topics(self._book.tracked)
        return check
