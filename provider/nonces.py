"""Nonces assigned locally per account, so a burst of one account's writes needs
no round trip per transaction; resynced from the chain after a nonce error, and for
every account after a rebalance (another provider may have signed for it meanwhile)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class NonceTracker:
    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def turn(self, address: str) -> Turn:
        """A place in the account's line, taken now: writes get their turns in the order
        they asked, whatever each awaits before waiting for it."""
        return Turn(self._locks.setdefault(address, asyncio.Lock()))

    async def take(self, address: str, chain_count: Callable[[], Awaitable[int]]) -> int:
        """The next nonce; the first time, from the chain's pending transaction count."""
        if address not in self._next:
            self._next[address] = await chain_count()
        nonce = self._next[address]
        self._next[address] = nonce + 1
        return nonce

    def give_back(self, address: str, nonce: int) -> None:
        """A nonce that was taken but never broadcast can be reused by the next write."""
        if self._next.get(address) == nonce + 1:
            self._next[address] = nonce

    def forget(self, address: str) -> None:
        """Resync from the chain on the next take (after 'nonce too low' and the like)."""
        self._next.pop(address, None)

    def forget_all(self) -> None:
        """Resync every account on its next take: its partition may have moved."""
        self._next.clear()


class Turn:
    """One write's place in its account's FIFO line: while it has the turn, no other write
    of the account is signed or sent."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        # The place is queued at once (a task runs in the order it was made), not when the
        # write first awaits its turn.
        self._acquiring = asyncio.ensure_future(lock.acquire())

    async def wait(self) -> None:
        """Return when it is this write's turn."""
        await asyncio.shield(self._acquiring)

    def end(self) -> None:
        """Give the turn back, or the place in line if the turn has not come."""
        if self._acquiring.done() and not self._acquiring.cancelled():
            if self._acquiring.exception() is None:
                self._lock.release()
        else:
            self._acquiring.cancel()
