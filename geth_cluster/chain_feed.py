"""The chain feed: the cluster's head, block by block, on the chain-heads topic.

The manager already knows which nodes answer; the feed reads new blocks from one of them
(the source) and publishes each block's header and logs (`ethgw_wire.chain_heads`) in
order, keyed by number, one block acknowledged before the next is sent. When the source
fails a read it rests for `rest_s` and the next readable node takes over from the block
after the last one published, fetching every block in between: no gap, and no number
published twice. At start the feed continues after the topic's last record, so a restart
neither repeats nor skips (up to `max_backfill` blocks; a longer outage skips the oldest
and says so).

The rules (which node, which numbers) are pure functions; `ChainFollower` applies them
over a `BlockReader` and a `HeadSink`, which are the only I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from aiokafka import TopicPartition

from ethgw_wire.chain_heads import ChainHead, chain_head_key, header_of
from ethgw_wire.kafka import decode, encode, kafka_consumer
from ethgw_wire.node_reports import Lifecycle, NodeReport
from ethgw_wire.settings import KafkaSettings
from geth_cluster.errors import NodeUnreachableError, RpcError
from geth_cluster.node_rpc import block_number, rpc_call

log = logging.getLogger("ethgw.chain_feed")

# Nodes that answer reads: a cordoned or draining node is out of routing, not broken.
READABLE = frozenset({Lifecycle.UP, Lifecycle.CORDONED, Lifecycle.DRAINING})

# What a node's failure to answer looks like from here.
READ_FAILURES: tuple[type[Exception], ...] = (
    NodeUnreachableError,
    RpcError,
    httpx.HTTPError,
    TimeoutError,
    ValueError,  # a garbled answer
    KeyError,
)


@dataclass(frozen=True)
class Source:
    """A node the feed may read, with the head the manager last saw on it."""

    node_id: str
    rpc_url: str
    block: int


def readable_sources(reports: Iterable[NodeReport]) -> list[Source]:
    """The nodes that answer, highest head first (then by name, for a stable choice)."""
    sources = [
        Source(r.node_id, r.rpc_url, r.block)
        for r in reports
        if r.lifecycle in READABLE and r.block is not None
    ]
    return sorted(sources, key=lambda s: (-s.block, s.node_id))


def pick_source(
    candidates: Sequence[Source], current: str | None, resting: Collection[str], slack: int = 1
) -> Source | None:
    """The node to read now: the current one while it is readable and within `slack` blocks
    of the best, else the best readable one that is not resting after a failure."""
    usable = [c for c in candidates if c.node_id not in resting]
    if not usable:
        return None
    best = max(c.block for c in usable)
    for candidate in usable:
        if candidate.node_id == current and candidate.block >= best - slack:
            return candidate
    return min(usable, key=lambda c: (-c.block, c.node_id))


def numbers_to_fetch(last_published: int | None, head: int, max_backfill: int) -> range:
    """The block numbers to publish, in order, once the source's head is `head`: those after
    the last published, at most `max_backfill` of them (the newest); only the head itself
    when nothing was ever published; none when the source is not past the last one."""
    if last_published is None:
        return range(head, head + 1)
    first = max(last_published + 1, head - max_backfill + 1)
    return range(first, head + 1)


class BlockReader(Protocol):
    async def head(self, source: Source) -> int: ...

    async def block(self, source: Source, number: int) -> ChainHead | None:
        """The block `number` with its logs, None when the node does not have it yet."""
        ...


class HeadSink(Protocol):
    async def send(self, head: ChainHead) -> None:
        """Returns once the record is acknowledged."""
        ...


class ChainFollower:
    """Publishes every block after `last_published`, reading from one source at a time."""

    def __init__(
        self,
        reader: BlockReader,
        sink: HeadSink,
        sources: Callable[[], Sequence[Source]],
        *,
        last_published: ChainHead | None = None,
        max_backfill: int = 1024,
        rest_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._sink = sink
        self._sources = sources
        self._max_backfill = max_backfill
        self._rest_s = rest_s
        self._clock = clock
        self._resting: dict[str, float] = {}
        self.source: str | None = None
        self.last_number = last_published.number if last_published else None
        self._last_hash = last_published.hash if last_published else None

    async def step(self) -> int:
        """Read the source's head and publish every block up to it; returns how many were
        published. A read failure rests the source; a refused publish raises (the same
        block is sent again next step)."""
        source = self._choose()
        if source is None:
            return 0
        try:
            head = await self._reader.head(source)
        except READ_FAILURES as error:
            self._rest(source, error)
            return 0
        wanted = numbers_to_fetch(self.last_number, head, self._max_backfill)
        if self.last_number is not None and wanted and wanted.start > self.last_number + 1:
            log.warning(
                "chain feed skipped blocks first=%d last=%d max_backfill=%d",
                self.last_number + 1,
                wanted.start - 1,
                self._max_backfill,
            )
        published = 0
        for number in wanted:
            try:
                block = await self._reader.block(source, number)
            except READ_FAILURES as error:
                self._rest(source, error)
                break
            if block is None:
                break  # the node reported a head it cannot serve yet: next step
            self._check_parent(block)
            await self._sink.send(block)
            self.last_number, self._last_hash = block.number, block.hash
            published += 1
        return published

    def _choose(self) -> Source | None:
        now = self._clock()
        resting = {node for node, until in self._resting.items() if until > now}
        source = pick_source(self._sources(), self.source, resting)
        chosen = None if source is None else source.node_id
        if chosen != self.source:
            log.info(
                "chain feed source node=%s previous=%s next_block=%s",
                chosen,
                self.source,
                None if self.last_number is None else self.last_number + 1,
            )
            self.source = chosen
        return source

    def _rest(self, source: Source, error: Exception) -> None:
        self._resting[source.node_id] = self._clock() + self._rest_s
        log.warning(
            "chain feed source failed node=%s rest_s=%.1f error=%r",
            source.node_id,
            self._rest_s,
            error,
        )

    def _check_parent(self, block: ChainHead) -> None:
        # Clique with one sealer does not reorganise; should it ever, say so.
        if self._last_hash is not None and block.parent_hash != self._last_hash:
            log.warning(
                "chain feed parent mismatch block=%d parent=%s last_hash=%s",
                block.number,
                block.parent_hash,
                self._last_hash,
            )


# -- the I/O -----------------------------------------------------------------------------


class NodeBlockReader:
    """Blocks and logs over a node's JSON-RPC, each call bounded by `timeout_s`."""

    def __init__(self, http: httpx.AsyncClient, timeout_s: float) -> None:
        self._http = http
        self._timeout_s = timeout_s

    async def head(self, source: Source) -> int:
        async with asyncio.timeout(self._timeout_s):
            return await block_number(self._http, source.rpc_url)

    async def block(self, source: Source, number: int) -> ChainHead | None:
        async with asyncio.timeout(self._timeout_s):
            block = await rpc_call(
                self._http, source.rpc_url, "eth_getBlockByNumber", [hex(number), False]
            )
            if block is None:
                return None
            logs = await rpc_call(
                self._http, source.rpc_url, "eth_getLogs", [{"blockHash": block["hash"]}]
            )
        return chain_head_of(block, logs, source.node_id)


def chain_head_of(block: dict[str, Any], logs: list[dict[str, Any]], source: str) -> ChainHead:
    return ChainHead(
        number=int(block["number"], 16),
        hash=block["hash"],
        parent_hash=block["parentHash"],
        header=header_of(block),
        logs=logs,
        source=source,
    )


class KafkaHeadSink:
    """Each block on the chain-heads topic, keyed by number, acknowledged before the next."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, head: ChainHead) -> None:
        await self._producer.send_and_wait(
            self._topic, encode(head), key=chain_head_key(head.number)
        )


async def last_published(settings: KafkaSettings, timeout_s: float = 10.0) -> ChainHead | None:
    """The topic's last record, where a restarted feed continues; None when it is empty or
    cannot be read (the feed then starts at the head: the consumers drop a repeat)."""
    partition = TopicPartition(settings.topic_chain_heads, 0)
    try:
        async with asyncio.timeout(timeout_s), kafka_consumer(settings, group_id=None) as consumer:
            consumer.assign([partition])
            end = (await consumer.end_offsets([partition]))[partition]
            if end == 0:
                return None
            consumer.seek(partition, end - 1)
            record = await consumer.getone(partition)
        return decode(ChainHead, record.value)
    except Exception as error:  # no topic yet, broker slow: not a reason to stop the manager
        log.warning(
            "chain feed could not read the last block topic=%s error=%r", partition.topic, error
        )
        return None


class ChainFeed:
    """Runs a `ChainFollower` every `poll_s` while entered (an async context manager)."""

    def __init__(self, follower: ChainFollower, poll_s: float) -> None:
        self.follower = follower
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChainFeed:
        self._task = asyncio.create_task(self._run(), name="chain-feed")
        log.info("chain feed started after_block=%s", self.follower.last_number)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("chain feed stopped last_block=%s", self.follower.last_number)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.follower.step()
            except Exception as error:  # Kafka refused: the same block goes again next step
                if not failing:
                    log.warning("chain feed publish failed error=%r", error)
                failing = True
            else:
                if failing:
                    log.info("chain feed publish recovered")
                failing = False
            await asyncio.sleep(self._poll_s)
