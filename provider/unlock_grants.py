"""Unlocks that outlive the provider that made them.

An unlock decrypts an account's key (scrypt) in the provider that ran it. So that the
account's writes still sign after that provider dies, or after a rebalance gives the
account's partition to another provider, the unlock also leaves a grant on the compacted
topic `ethgw.unlock-grants`, keyed by address: the private key sealed with the key the
providers share (sealing.GrantBox), its owner and its expiry. Every provider mirrors the
topic; one asked to sign for an account it did not unlock opens a live grant instead of
answering account_locked.

A grant is bound to its address, owner and expiry (the seal's associated data): a record
altered on the topic, or moved to another account, does not open. An expired grant is
ignored, and tombstoned by the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from ethgw_wire.sealing import GrantBox, SealError
from ethgw_wire.topic_mirror import TopicMirror

log = logging.getLogger("ethgw.provider.grants")


class UnlockGrant(BaseModel):
    """One account's unlock: its key sealed for the providers, until `expires_at`."""

    model_config = ConfigDict(frozen=True)

    address: str
    owner: str | None  # the account's owner (its keystore record's) when it was unlocked
    sealed_key: str
    expires_at: float  # seconds since 1970, the unlock's `unlocked_until`
    granted_at: float = Field(default_factory=time.time)


def _binding(address: str, owner: str | None, expires_at: float) -> str:
    return f"ethgw unlock grant v1|{address}|{owner or ''}|{expires_at!r}"


class UnlockGrants:
    """The grants of every provider, through the mirror of their topic."""

    def __init__(self, table: TopicMirror[UnlockGrant], box: GrantBox) -> None:
        self._table = table
        self._box = box

    async def grant(self, address: str, key: bytes, owner: str | None, expires_at: float) -> None:
        """Durably record an unlock (written to Kafka before this returns)."""
        sealed = self._box.seal(key, _binding(address, owner, expires_at))
        grant = UnlockGrant(address=address, owner=owner, sealed_key=sealed, expires_at=expires_at)
        await self._table.put(address, grant)

    def key_of(self, address: str, owner: str | None, now: float) -> tuple[bytes, float] | None:
        """The key and expiry of the account's live grant, if one opens for this owner."""
        grant = self._table.get(address)
        if grant is None or grant.expires_at <= now:
            return None
        if grant.owner != owner:
            log.warning("unlock grant refused address=%s reason=owner", address)
            return None
        try:
            key = self._box.open(grant.sealed_key, _binding(address, owner, grant.expires_at))
        except SealError:
            log.warning("unlock grant refused address=%s reason=seal", address)
            return None
        if Account.from_key(key).address != address:
            log.warning("unlock grant refused address=%s reason=key", address)
            return None
        log.info(
            "unlock taken from its grant address=%s expires_at=%.0f", address, grant.expires_at
        )
        return key, grant.expires_at

    async def prune(self, now: float) -> int:
        """Tombstone the grants expired by `now`; returns how many."""
        expired = [address for address, g in self._table.items() if g.expires_at <= now]
        if expired:
            await self._table.delete(expired)
            log.info("unlock grants pruned count=%d", len(expired))
        return len(expired)

    async def run_pruning(self, stop: asyncio.Event, interval_s: float) -> None:
        """Sweep every `interval_s` until `stop`; a failed sweep is tried at the next."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            if stop.is_set():
                return
            try:
                await self.prune(time.time())
            except Exception as error:
                log.warning("unlock grant pruning failed error=%r", error)
