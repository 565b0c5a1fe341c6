"""The logic of the event streams above the read pipeline: the hub's fan-out, the live
tail, a stream's history-then-live hand-over, the keys' viewers, and the query's resume
points. The pipeline is a fake here; tests/front_door/test_events.py runs the real one."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.types import Message

from ethgw_wire.events import EVENT_KIND_NAMES, ChainEvent, EventPosition, MintEvent, Viewer
from gateway.event_hub import (
    EventBatch,
    EventHub,
    EventStreams,
    PollingTail,
    StreamDroppedError,
    StreamSlots,
)
from gateway.event_pages import EventPage, EventSourceError, KeyViewers
from gateway.keys import ApiKey, Role
from gateway.routes_events import EventStreamResponse, _Stream, parse_kinds, resume_position
from gateway.upstream import Upstreams
from service_kit.serving import Drain

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
ADMIN = ApiKey("admin0000000", "admin", Role.ADMIN, "0" * 64, 0.0)
USER = ApiKey("user00000000", "user", Role.USER, "1" * 64, 0.0)


def mint(block: int, index: int = 0, to: str = ALICE) -> MintEvent:
    return MintEvent(
        id=f"{block}-{index}", block_number=block, log_index=index, tx_hash="0x", to=to, value=1
    )


class FakeChain:
    """EventPages over a fixed list of events and a head that tests move."""

    def __init__(self, events: Sequence[ChainEvent], head: int) -> None:
        self.events = list(events)
        self.head = head
        self.reads: list[tuple[int, int | None]] = []

    async def page(self, from_block: int, to_block: int | None = None) -> EventPage:
        self.reads.append((from_block, to_block))
        last = self.head if to_block is None else min(to_block, self.head)
        shown = tuple(e for e in self.events if from_block <= e.block_number <= last)
        return EventPage(from_block, max(last, from_block - 1), self.head, shown, time.monotonic())


class FixedViewers(KeyViewers):
    """Viewers whose accounts come from a dict instead of accounts.list; counts reads."""

    def __init__(self, accounts: dict[str, list[str]]) -> None:
        super().__init__(self._no_upstreams)
        self.accounts = accounts
        self.reads = 0

    @staticmethod
    def _no_upstreams() -> Upstreams:
        raise AssertionError("no pipeline in these tests")

    async def _accounts_of(self, key: ApiKey) -> Viewer:
        self.reads += 1
        return Viewer.of_accounts(self.accounts.get(key.key_id, []))


def streams_of(chain: FakeChain, viewers: KeyViewers, queue_batches: int = 8) -> EventStreams:
    return EventStreams(
        hub=EventHub(queue_batches),
        pages=chain,
        viewers=viewers,
        slots=StreamSlots(2),
        keepalive_s=0.2,
        write_timeout_s=1.0,
        source_timeout_s=2.0,
        key_accepted=lambda _key: True,
    )


async def collect(
    stream: _Stream, start: EventPosition | None, until: Callable[[list[str]], bool]
) -> list[str]:
    """The ids a stream sends until `until` holds of them."""
    ids: list[str] = []
    events = stream.run(start)
    async with asyncio.timeout(5):
        async for chunk in events:
            ids += [line[4:] for line in chunk.splitlines() if line.startswith("id: ")]
            if until(ids):
                break
    await events.aclose()
    return ids


async def test_a_stream_sends_the_history_then_the_live_events_once_each() -> None:
    """Resumed after 3-0 with the tail at block 5, a stream sends 3-1..5-0 from history,
    then the live batches' events, skipping those it already sent."""
    chain = FakeChain([mint(2), mint(3), mint(3, 1), mint(5)], head=5)
    streams = streams_of(chain, FixedViewers({}))
    streams.hub.start(5)
    subscription = await streams.hub.subscribe()
    streams.hub.publish(EventBatch(6, (mint(5), mint(6)), time.monotonic()))  # overlaps
    stream = _Stream(streams, ADMIN, subscription, frozenset(EVENT_KIND_NAMES), None)
    ids = await collect(stream, EventPosition(3, 0), lambda ids: "6-0" in ids)
    stream.close()
    assert ids == ["3-1", "5-0", "6-0"]


async def test_a_live_only_stream_starts_after_the_tails_cursor() -> None:
    """Without a resume point, nothing of the blocks the tail had covered is sent."""
    chain = FakeChain([mint(4)], head=4)
    streams = streams_of(chain, FixedViewers({}))
    streams.hub.start(4)
    subscription = await streams.hub.subscribe()
    streams.hub.publish(EventBatch(5, (mint(4), mint(5)), time.monotonic()))
    stream = _Stream(streams, ADMIN, subscription, frozenset(EVENT_KIND_NAMES), None)
    assert await collect(stream, None, lambda ids: bool(ids)) == ["5-0"]
    stream.close()
    assert chain.reads == []  # no history asked


async def test_an_idle_stream_sends_keep_alive_comments() -> None:
    """With no event for keepalive_s, the stream writes a comment line."""
    streams = streams_of(FakeChain([], head=1), FixedViewers({}))
    streams.hub.start(1)
    subscription = await streams.hub.subscribe()
    stream = _Stream(streams, ADMIN, subscription, frozenset(EVENT_KIND_NAMES), None)
    events = stream.run(None)
    async with asyncio.timeout(5):
        assert (await anext(events)).startswith("retry:")
        assert await anext(events) == ": keep-alive\n\n"
    await events.aclose()
    stream.close()


async def test_a_stream_ends_once_the_server_drains() -> None:
    """A live stream ends by itself within a second of the drain's start (the server waits
    for open answers before it stops)."""
    streams = streams_of(FakeChain([], head=1), FixedViewers({}))
    streams.hub.start(1)
    subscription = await streams.hub.subscribe()
    drain = Drain()
    stream = _Stream(streams, ADMIN, subscription, frozenset(EVENT_KIND_NAMES), drain)
    events = stream.run(None)
    assert (await anext(events)).startswith("retry:")
    drain.started = True
    async with asyncio.timeout(3):
        rest = [chunk async for chunk in events]
    stream.close()
    assert all(chunk.startswith(":") for chunk in rest)
    assert not streams.hub.wanted  # its subscription is gone


async def test_a_stream_of_a_revoked_key_ends_saying_so() -> None:
    """A live stream ends, with a comment that says why, once its key is no longer accepted."""
    revoked: set[str] = set()
    streams = dataclasses.replace(
        streams_of(FakeChain([], head=1), FixedViewers({})),
        key_accepted=lambda key: key.key_id not in revoked,
    )
    streams.hub.start(1)
    subscription = await streams.hub.subscribe()
    stream = _Stream(streams, USER, subscription, frozenset(EVENT_KIND_NAMES), None)
    events = stream.run(None)
    assert (await anext(events)).startswith("retry:")
    revoked.add(USER.key_id)
    async with asyncio.timeout(3):
        rest = [chunk async for chunk in events]
    stream.close()
    assert rest[-1] == ": the API key was revoked\n\n"
    assert not streams.hub.wanted  # its subscription is gone


async def test_a_client_that_stops_reading_is_cut_and_its_stream_freed() -> None:
    """A write that has not drained after write_timeout_s ends the answer unfinished (the
    server then closes the connection), and the stream's subscription is released."""
    streams = streams_of(FakeChain([], head=1), FixedViewers({}))
    streams.hub.start(1)
    subscription = await streams.hub.subscribe()
    stream = _Stream(streams, ADMIN, subscription, frozenset(EVENT_KIND_NAMES), None)
    response = EventStreamResponse(stream, None, write_timeout_s=0.2)
    sent: list[Message] = []

    async def stuck_send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the client's window never opens

    async def no_disconnect() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with asyncio.timeout(3):
        await response({"type": "http", "asgi": {}}, no_disconnect, stuck_send)
    assert sent[-1]["more_body"] is True  # never finished
    assert not streams.hub.wanted


async def test_a_user_stream_rereads_its_accounts_for_an_account_made_since() -> None:
    """An event naming an account the key's viewer lacks, read after the viewer was, makes
    the viewer be read again (the key's new account); the event is then shown."""
    viewers = FixedViewers({USER.key_id: []})
    streams = streams_of(FakeChain([], head=1), viewers)
    await viewers.viewer(USER)
    viewers.accounts[USER.key_id] = [BOB]  # made since
    streams.hub.start(1)
    subscription = await streams.hub.subscribe()
    streams.hub.publish(EventBatch(2, (mint(2, to=ALICE), mint(2, 1, to=BOB)), time.monotonic()))
    stream = _Stream(streams, USER, subscription, frozenset(EVENT_KIND_NAMES), None)
    assert await collect(stream, None, lambda ids: bool(ids)) == ["2-1"]
    stream.close()
    assert viewers.reads == 2


async def test_events_read_before_the_viewer_do_not_reread_it() -> None:
    """A batch read before the key's accounts were read names no account made since."""
    viewers = FixedViewers({USER.key_id: []})
    before = time.monotonic()
    await viewers.viewer(USER)
    await viewers.viewer(USER, [mint(2, to=ALICE)], before)
    assert viewers.reads == 1


async def test_a_slow_subscription_is_dropped_while_the_others_get_the_batch() -> None:
    """A subscription whose queue is full is dropped (its next read says so); the other
    gets every batch."""
    hub = EventHub(queue_batches=2)
    hub.start(0)
    slow, fast = await hub.subscribe(), await hub.subscribe()
    for block in (1, 2, 3):
        hub.publish(EventBatch(block, (mint(block),), time.monotonic()))
        assert await fast.next(0.1) is not None
    assert slow.dropped
    with pytest.raises(StreamDroppedError):
        await slow.next(0.1)


async def test_the_tail_reads_only_while_a_stream_is_open() -> None:
    """No stream: no page read. A stream: the head, then each page after the cursor,
    published; the last stream gone: idle again."""
    chain = FakeChain([mint(3)], head=2)
    hub = EventHub(8)
    tail = asyncio.create_task(PollingTail(hub, chain, interval_s=0.05).run())
    try:
        await asyncio.sleep(0.2)
        assert chain.reads == []
        subscription = await hub.subscribe()
        assert subscription.cursor == 2
        chain.head = 3
        async with asyncio.timeout(5):
            batch = await subscription.next(5)
        assert batch is not None
        assert [e.id for e in batch.events] == ["3-0"]
        hub.unsubscribe(subscription)
        await asyncio.sleep(0.2)
        reads = len(chain.reads)
        await asyncio.sleep(0.3)
        assert len(chain.reads) == reads
        assert hub.cursor is None
    finally:
        tail.cancel()


async def test_a_failing_tail_keeps_its_cursor_and_goes_on() -> None:
    """A page the pipeline cannot read is tried again at the next interval, from the same
    block."""

    class Flaky(FakeChain):
        failures = 2

        async def page(self, from_block: int, to_block: int | None = None) -> EventPage:
            if from_block > 0 and self.failures:
                self.failures -= 1
                raise EventSourceError("no instance")
            return await super().page(from_block, to_block)

    chain = Flaky([mint(2)], head=1)
    hub = EventHub(8)
    tail = asyncio.create_task(PollingTail(hub, chain, interval_s=0.02).run())
    try:
        subscription = await hub.subscribe()
        chain.head = 2
        batch = await subscription.next(5)
        assert batch is not None
        assert batch.events == (mint(2),)
    finally:
        tail.cancel()


def test_the_slots_bound_the_streams_of_a_key() -> None:
    """A key holds at most per_key streams; a release frees one; keys are apart."""
    slots = StreamSlots(2)
    assert slots.take("a")
    assert slots.take("a")
    assert not slots.take("a")
    assert slots.take("b")
    slots.release("a")
    assert slots.take("a")


def test_last_event_id_wins_then_after_then_from_block() -> None:
    """A reconnecting EventSource's Last-Event-ID resumes, whatever its URL says."""
    assert resume_position("9-1", None, 3) == EventPosition(9, 1)
    assert resume_position(None, "4-2", None) == EventPosition(4, 2)
    assert resume_position(None, None, 3) == EventPosition(3, -1)
    assert resume_position(None, None, None) is None


def test_after_and_from_block_together_are_refused_naming_after() -> None:
    """Two start points that may disagree: 422 naming `after`."""
    with pytest.raises(RequestValidationError) as refused:
        resume_position(None, "4-2", 3)
    assert refused.value.errors()[0]["loc"] == ("query", "after")


def test_kinds_name_known_kinds_only() -> None:
    """`kinds` is a comma-separated subset of the kinds; an unknown or empty one is refused
    naming `kinds` and listing the kinds."""
    assert parse_kinds("mint, transfer") == {"mint", "transfer"}
    assert parse_kinds(None) == set(EVENT_KIND_NAMES)
    for bad in ("mint,swap", ",", ""):
        with pytest.raises(RequestValidationError) as refused:
            parse_kinds(bad)
        error = refused.value.errors()[0]
        assert error["loc"] == ("query", "kinds")
        assert "project_published" in error["msg"]
