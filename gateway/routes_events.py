"""`GET /api/v1/events`: the platform events as Server-Sent Events.

A stream subscribes to the gateway's live tail first, then reads the history from where
the client resumes up to the block the tail had covered (pages of `events.range` through
the read pipeline), then forwards the live batches. Every event goes out once, in chain
order: an event at or before the last one sent is skipped, so history and live never
overlap. Each event is shown as the key may see it (ethgw_wire.events.visible_to).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ethgw_wire.events import (
    EVENT_ID_PATTERN,
    EVENT_KIND_NAMES,
    ChainEvent,
    EventPosition,
    event_json,
    visible_to,
)
from ethgw_wire.http_api import API_PREFIX, error_answers_doc
from ethgw_wire.rpc_params import LOGS_MAX_BLOCKS
from gateway.errors import (
    INVALID_INPUT,
    KEYED_ANSWERS,
    EventStreamsLimitedError,
    EventsUnavailableError,
)
from gateway.event_hub import EventStreams, StreamDroppedError, Subscription
from gateway.event_pages import EventPage, EventSourceError
from gateway.keys import ApiKey
from gateway.metrics import EVENT_STREAMS, EVENT_STREAMS_DROPPED, EVENTS_SENT
from gateway.state import get_caller, get_state
from service_kit.serving import DRAIN_SCOPE_KEY, Drain

log = logging.getLogger("ethgw.gateway")

EVENTS_PATH = "/events"
EVENTS_ROUTE = API_PREFIX + EVENTS_PATH
# How soon a client reconnects after the stream ends (the SSE `retry:` field).
RECONNECT_MS = 2000
# How often an idle stream looks whether the server is draining.
_DRAIN_CHECK_S = 1.0
# The last position in a block: "after the whole block".
_END_OF_BLOCK = 2**31

router = APIRouter(prefix=API_PREFIX, tags=["events"])


def sse_event(event: ChainEvent) -> str:
    """One event as an SSE message: id, event (its kind), data (its JSON, one line)."""
    data = json.dumps(event_json(event), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


def parse_kinds(kinds: str | None) -> frozenset[str]:
    """The kinds a `kinds` query names (comma-separated); every kind when absent."""
    if kinds is None:
        return frozenset(EVENT_KIND_NAMES)
    named = {k.strip() for k in kinds.split(",") if k.strip()}
    unknown = sorted(named - set(EVENT_KIND_NAMES))
    if unknown or not named:
        reason = f"unknown kind {', '.join(unknown)}" if unknown else "names no kind"
        raise _invalid("kinds", f"{reason}; the kinds are {', '.join(EVENT_KIND_NAMES)}")
    return frozenset(named)


def _invalid(name: str, reason: str, where: str = "query") -> RequestValidationError:
    return RequestValidationError([{"loc": (where, name), "msg": reason, "type": "value_error"}])


def resume_position(
    last_event_id: str | None, after: str | None, from_block: int | None
) -> EventPosition | None:
    """Where the stream resumes, exclusive: after Last-Event-ID (a reconnecting EventSource
    sends it with its first URL), after `after`, or before `from_block`; None: live only."""
    if after is not None and from_block is not None:
        raise _invalid("after", "give either after or from_block, not both")
    if last_event_id is not None:
        return EventPosition.parse(last_event_id)
    if after is not None:
        return EventPosition.parse(after)
    if from_block is not None:
        return EventPosition.before_block(from_block)
    return None


_STREAM_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: each message has `id` (the event id"
        " `<block>-<logIndex>`), `event` (its kind) and `data` (the event's JSON, typed as"
        " the `events` of GET /api/v1/events/range); comment lines keep an idle stream open",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **error_answers_doc(
        [
            *KEYED_ANSWERS,
            INVALID_INPUT,
            EventStreamsLimitedError.answer(),
            EventsUnavailableError.answer(),
        ]
    ),
}


@router.get(
    EVENTS_PATH,
    name="events.stream",
    operation_id="events_stream",
    summary="The platform events, live, as Server-Sent Events (resumable)",
    response_class=StreamingResponse,
    responses=_STREAM_ANSWERS,
)
async def events_stream(
    request: Request,
    from_block: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Start with the events of this block"),
    ] = None,
    after: Annotated[
        str | None,
        Query(pattern=EVENT_ID_PATTERN, description="Start after this event id"),
    ] = None,
    kinds: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only these kinds, comma-separated: " + ", ".join(EVENT_KIND_NAMES),
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            pattern=EVENT_ID_PATTERN,
            description="Resume after this event id (sent by a reconnecting EventSource)",
        ),
    ] = None,
) -> StreamingResponse:
    """Projects published and bought, token mints, burns and transfers, from the token's
    logs, as the key may see them. Without `from_block`, `after` or `Last-Event-ID` it
    starts with the next block; with one, the history from there comes first."""
    wanted = parse_kinds(kinds)
    start = resume_position(last_event_id, after, from_block)
    key = get_caller(request)
    assert key is not None  # a keyed route: the middleware refused a request without one
    streams = get_state(request).events
    if not streams.slots.take(key.key_id):
        raise EventStreamsLimitedError(
            f"this API key already holds {streams.slots.per_key} event streams open,"
            " the limit per key; close one first"
        )
    try:
        subscription = await _subscribe(streams, key)
    except BaseException:
        streams.slots.release(key.key_id)
        raise
    stream = _Stream(streams, key, subscription, wanted, request.scope.get(DRAIN_SCOPE_KEY))
    return EventStreamResponse(stream, start, streams.write_timeout_s)


async def _subscribe(streams: EventStreams, key: ApiKey) -> Subscription:
    """The stream's subscription to the live tail, once the key's viewer is known."""
    try:
        async with asyncio.timeout(streams.source_timeout_s):
            await streams.viewers.viewer(key)
            return await streams.hub.subscribe()
    except (TimeoutError, EventSourceError) as error:
        raise EventsUnavailableError(
            f"the platform events cannot be read now ({error or 'timed out'}); retry"
        ) from None


class EventStreamResponse(StreamingResponse):
    """A text/event-stream answer whose every write must drain within `write_timeout_s`:
    a client that stops reading is cut, never waited for. However it ends (the client
    gone, the server draining, a failure), the stream's slot and subscription are freed."""

    media_type = "text/event-stream"

    def __init__(
        self, stream: _Stream, start: EventPosition | None, write_timeout_s: float
    ) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        self._stream = stream
        self._events = stream.run(start)
        self._write_timeout_s = write_timeout_s
        super().__init__(self._events, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()
            self._stream.close()

    async def stream_response(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        try:
            async for chunk in self._events:
                async with asyncio.timeout(self._write_timeout_s):
                    body = {"body": chunk.encode(), "more_body": True}
                    await send({"type": "http.response.body", **body})
        except TimeoutError:
            # Unfinished on purpose: the server closes a connection whose answer the app
            # left unfinished, which is what a client that stopped reading gets.
            self._stream.ended("slow")
            EVENT_STREAMS_DROPPED.labels("slow").inc()
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _KeyRevokedError(Exception):
    """The stream's key was revoked while the stream ran."""


class _Stream:
    """One client's stream: the history, then the live batches, as its key sees them."""

    def __init__(
        self,
        streams: EventStreams,
        key: ApiKey,
        subscription: Subscription,
        kinds: frozenset[str],
        drain: Drain | None,
    ) -> None:
        self._streams = streams
        self._key = key
        self._subscription = subscription
        self._kinds = kinds
        self._drain = drain
        self._last = EventPosition(subscription.cursor, _END_OF_BLOCK)
        self._reason = "client_gone"
        self._closed = False
        EVENT_STREAMS.inc()

    def ended(self, reason: str) -> None:
        self._reason = reason

    def close(self) -> None:
        """Free its slot and its subscription (once)."""
        if self._closed:
            return
        self._closed = True
        self._streams.hub.unsubscribe(self._subscription)
        self._streams.slots.release(self._key.key_id)
        EVENT_STREAMS.dec()
        log.info("event stream ended key_id=%s reason=%s", self._key.key_id, self._reason)

    async def run(self, start: EventPosition | None) -> AsyncGenerator[str, None]:
        log.info(
            "event stream opened key_id=%s start=%s cursor=%d",
            self._key.key_id,
            "live" if start is None else start.event_id,
            self._subscription.cursor,
        )
        try:
            yield f"retry: {RECONNECT_MS}\n\n"
            if start is not None:
                self._last = start
                async for page in self._history(start.block):
                    for chunk in await self._shown(page.events, page.read_at):
                        yield chunk
            async for chunk in self._live():
                yield chunk
            self.ended("shutdown")
            EVENT_STREAMS_DROPPED.labels("shutdown").inc()
        except _KeyRevokedError:
            self.ended("revoked")
            EVENT_STREAMS_DROPPED.labels("revoked").inc()
            yield ": the API key was revoked\n\n"
        except StreamDroppedError:
            self.ended("slow")  # counted by the hub
            yield ": dropped: too slow; reconnect with Last-Event-ID\n\n"
        except EventSourceError as error:
            self.ended("source")
            EVENT_STREAMS_DROPPED.labels("source").inc()
            log.warning("event stream failing key_id=%s error=%s", self._key.key_id, error)
            yield ": the events cannot be read now; reconnect with Last-Event-ID\n\n"

    async def _history(self, first: int) -> AsyncIterator[EventPage]:
        """Pages from block `first` up to the tail's cursor when the stream subscribed; a
        node not yet there is asked again until source_timeout_s without progress."""
        last_block = self._subscription.cursor
        block = first
        deadline = time.monotonic() + self._streams.source_timeout_s
        while block <= last_block:
            try:
                end = min(last_block, block + LOGS_MAX_BLOCKS - 1)
                page = await self._streams.pages.page(block, end)
            except EventSourceError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            if page.to_block < block:
                if time.monotonic() > deadline:
                    raise EventSourceError(f"no node has reached block {block}")
                await asyncio.sleep(0.2)
                continue
            deadline = time.monotonic() + self._streams.source_timeout_s
            block = page.to_block + 1
            yield page

    async def _live(self) -> AsyncIterator[str]:
        idle_since = time.monotonic()
        while self._drain is None or not self._drain.started:
            if not self._streams.key_accepted(self._key):
                raise _KeyRevokedError
            waited = time.monotonic() - idle_since
            wait_s = min(_DRAIN_CHECK_S, max(0.0, self._streams.keepalive_s - waited))
            batch = await self._subscription.next(wait_s)
            if batch is None:
                if time.monotonic() - idle_since >= self._streams.keepalive_s:
                    idle_since = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            chunks = await self._shown(batch.events, batch.read_at)
            if chunks:
                idle_since = time.monotonic()
            for chunk in chunks:
                yield chunk

    async def _shown(self, events: Sequence[ChainEvent], read_at: float) -> list[str]:
        """The SSE messages of the events after the last one passed, of the wanted kinds,
        as the key sees them."""
        fresh = [e for e in events if e.position > self._last]
        if not fresh:
            return []
        self._last = fresh[-1].position
        wanted = [e for e in fresh if e.kind in self._kinds]
        viewer = await self._streams.viewers.viewer(self._key, wanted, read_at)
        shown = [v for e in wanted if (v := visible_to(e, viewer)) is not None]
        for event in shown:
            EVENTS_SENT.labels(event.kind).inc()
        return [sse_event(e) for e in shown]
