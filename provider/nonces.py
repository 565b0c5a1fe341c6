"""Nonces assigned locally per account, so a burst of one account's writes needs
no round trip per transaction; resynced from the chain after a nonce error, and for
every account after a rebalance (another provider may have signed for it meanwhile)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

W = TypeVar("W")


class NonceTracker:
    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lines: dict[str, _Line[Any]] = {}

    def turn(self, address: str) -> Turn[Any]:
        """A place in the account's line, taken now: writes get their turns in the order
        they asked, whatever each awaits before waiting for it."""
        return Turn(self._lines.setdefault(address, _Line()))

    async def take(self, address: str, chain_count: Callable[[], Awaitable[int]]) -> int:
        """The next nonce; the first time, from the chain's pending transaction count."""
        if address not in self._next:
            self._next[address] = await chain_count()
        nonce = self._next[address]
        self._next[address] = nonce + 1
        return nonce

    def rewind(self, address: str, nonce: int) -> None:
        """Nonces from `nonce` on were taken but none was broadcast: the next writes reuse them."""
        if self._next.get(address, -1) > nonce:
            self._next[address] = nonce

    def forget(self, address: str) -> None:
        """Resync from the chain on the next take (after 'nonce too low' and the like)."""
        self._next.pop(address, None)

    def forget_all(self) -> None:
        """Resync every account on its next take: its partition may have moved."""
        self._next.clear()


class _Line(Generic[W]):
    """One account's line: the turn's lock, the places handed out, and the writes that are
    ready for their turn, by place."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.places_given = 0
        self.ready: dict[int, W] = {}


class Turn(Generic[W]):
    """One write's place in its account's FIFO line: while a write has the turn, no other
    write of the account is signed or sent, except those it takes along (`followers`)."""

    def __init__(self, line: _Line[W]) -> None:
        self._line = line
        self.place = line.places_given
        line.places_given += 1
        # The place is queued at once (a task runs in the order it was made), not when the
        # write first awaits its turn.
        self._acquiring = asyncio.ensure_future(line.lock.acquire())

    def ready(self, write: W) -> None:
        """The write is ready to be signed: a turn ahead of it may take it along."""
        self._line.ready[self.place] = write

    def followers(self, joinable: Callable[[W], bool], limit: int) -> list[W]:
        """Take the ready writes right behind this one into its turn, in line order. Stops
        at the first place whose write is not ready or not joinable, so none overtakes."""
        taken: list[W] = []
        place = self.place + 1
        while len(taken) < limit and place in self._line.ready:
            if not joinable(self._line.ready[place]):
                break
            taken.append(self._line.ready.pop(place))
            place += 1
        return taken

    async def wait_unless(self, settled: asyncio.Future[Any]) -> None:
        """Return when it is this write's turn, or sooner if `settled` is done first (a turn
        ahead took the write along). Neither is cancelled."""
        await asyncio.wait({self._acquiring, settled}, return_when=asyncio.FIRST_COMPLETED)

    def end(self) -> None:
        """Give the turn back, or the place in line if the turn has not come."""
        self._line.ready.pop(self.place, None)
        if self._acquiring.done() and not self._acquiring.cancelled():
            if self._acquiring.exception() is None:
                self._line.lock.release()
        else:
            self._acquiring.cancel()
