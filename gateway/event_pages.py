"""Where the gateway reads platform events and its keys' accounts: the read pipeline.

Both are operations of ethgw_wire.operations, asked of a read instance as any client's
read is (gateway -> read service -> Kafka -> provider -> node): `events.range` for a page
of events, `accounts.list` for the accounts of a key. The gateway never talks to a node.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from pydantic import ValidationError

from ethgw_wire.callers import CALLER_HEADER, Caller
from ethgw_wire.events import EVERYTHING, ChainEvent, Viewer, unknown_parties
from ethgw_wire.http_api import API_PREFIX, REQUEST_ID_HEADER
from ethgw_wire.operations import OPERATIONS
from ethgw_wire.results import AccountsResult, EventRangeResult
from gateway.errors import GatewayError
from gateway.keys import ApiKey, Role
from gateway.upstream import UpstreamAnswer, Upstreams

log = logging.getLogger("ethgw.gateway")

_RANGE_PATH = API_PREFIX + str(OPERATIONS["events.range"].path)
_ACCOUNTS_PATH = API_PREFIX + str(OPERATIONS["accounts.list"].path)


class EventSourceError(Exception):
    """The pipeline did not answer a read of events or accounts (no instance, a timeout,
    a failed task): the caller tries again later."""


@dataclass(frozen=True)
class EventPage:
    """The platform events of blocks from_block..to_block (to_block = from_block - 1: the
    node answering had not reached from_block), and the head that node saw."""

    from_block: int
    to_block: int
    head: int
    events: tuple[ChainEvent, ...]
    read_at: float  # time.monotonic() when it was read


class EventPages(Protocol):
    """A reader of pages of platform events, every event whole (the platform's view)."""

    async def page(self, from_block: int, to_block: int | None = None) -> EventPage:
        """The events from `from_block` up to `to_block` (None: the head), as far as one
        page goes; EventSourceError when no page could be read."""
        ...


def _data(answer: UpstreamAnswer, what: str) -> object:
    if answer.status != 200:
        raise EventSourceError(f"{what}: the read service answered {answer.status}")
    try:
        body = answer.json()
    except ValueError:
        raise EventSourceError(f"{what}: the read service's answer is not JSON") from None
    return body.get("data") if isinstance(body, dict) else None


async def _read(
    upstreams: Upstreams, path: str, query: str, caller: Caller | None, what: str
) -> object:
    headers = {REQUEST_ID_HEADER: uuid.uuid4().hex, "accept": "application/json"}
    if caller is not None:
        headers[CALLER_HEADER] = caller.header_value()
    try:
        answer = await upstreams.call(
            "read", "GET", path, idempotent=True, query=query, headers=headers
        )
    except GatewayError as error:
        raise EventSourceError(f"{what}: {error.reason}") from None
    return _data(answer, what)


class PipelineEventPages:
    """Pages of events through the read pipeline, asked as the platform (no caller), so
    they hold every event; each stream then shows its key what it may see."""

    def __init__(self, upstreams: Callable[[], Upstreams]) -> None:
        self._upstreams = upstreams

    async def page(self, from_block: int, to_block: int | None = None) -> EventPage:
        query = {"fromBlock": from_block}
        if to_block is not None:
            query["toBlock"] = to_block
        data = await _read(self._upstreams(), _RANGE_PATH, urlencode(query), None, "events")
        try:
            result = EventRangeResult.model_validate(data)
        except ValidationError as error:
            raise EventSourceError(f"events: not a page ({error.error_count()} errors)") from None
        events = tuple(result.events)
        return EventPage(result.from_block, result.to_block, result.head, events, time.monotonic())


@dataclass(frozen=True)
class _Known:
    viewer: Viewer
    read_at: float


def _stale(known: _Known, events: Sequence[ChainEvent], read_at: float) -> bool:
    """Whether events read at `read_at` may name an account made since `known` was read."""
    return known.read_at < read_at and bool(unknown_parties(events, known.viewer))


class KeyViewers:
    """What each API key may see of the events (ethgw_wire.events.Viewer): an admin key
    everything; a user key its accounts, read with `accounts.list` as that key.

    A key's accounts are read again when events name an account it does not know and were
    read after its accounts were: the account may be one the key made in between (an
    account is recorded before any event can name it), so a stream never hides an event of
    its key's new account. At most one read per key and batch of events."""

    def __init__(
        self, upstreams: Callable[[], Upstreams], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._upstreams = upstreams
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def viewer(
        self, key: ApiKey, events: Sequence[ChainEvent] = (), read_at: float = 0.0
    ) -> Viewer:
        """The key's viewer, fresh enough for `events` read at `read_at` (time.monotonic());
        EventSourceError when its accounts were never read and cannot be now."""
        if key.role is Role.ADMIN:
            return EVERYTHING
        lock = self._locks.setdefault(key.key_id, asyncio.Lock())
        async with lock:
            known = self._known.get(key.key_id)
            if known is not None and not _stale(known, events, read_at):
                return known.viewer
            started = self._clock()  # an account made during the read may be missing
            try:
                viewer = await self._accounts_of(key)
            except EventSourceError as error:
                if known is None:
                    raise
                log.warning("event viewer kept key_id=%s error=%s", key.key_id, error)
                return known.viewer
            self._known[key.key_id] = _Known(viewer, started)
            return viewer

    async def _accounts_of(self, key: ApiKey) -> Viewer:
        caller = Caller(key_id=key.key_id, role=key.role.value)
        data = await _read(self._upstreams(), _ACCOUNTS_PATH, "", caller, "accounts")
        try:
            accounts = AccountsResult.model_validate(data).accounts
        except ValidationError:
            raise EventSourceError("accounts: not a list of accounts") from None
        return Viewer.of_accounts(accounts)
