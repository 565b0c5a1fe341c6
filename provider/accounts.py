"""Accounts on the provider side: keystores shared through a compacted topic,
keys decrypted only in memory and only for the unlock's duration.

Why a compacted topic and not a shared folder: every provider already talks
to Kafka, the topic is replicated and durable like the tasks themselves, and a
provider on another host (compose, Kubernetes) needs no shared volume.

Each record names the API key that created the account (its owner): the record is
platform state that survives restarts and that every provider mirrors, so checking
who may use an account is a lookup in memory, never a round trip. The quotas of a user
key are counted from the same records; failed unlocks are counted in this provider's
memory (unlock_throttle.py).

An unlock is also written down as a sealed grant that every provider mirrors
(unlock_grants.py), so the account's writes sign on whichever provider gets them, after
a crash or a rebalance, until the unlock expires.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from ethgw_wire.callers import Caller, may_use
from ethgw_wire.errors import (
    AccountLockedError,
    AccountQuotaError,
    NotAccountOwnerError,
    UnknownAccountError,
    UnlockThrottledError,
    WrongPasswordError,
)
from ethgw_wire.topic_mirror import TopicMirror
from provider.unlock_grants import UnlockGrants
from provider.unlock_throttle import FailureThrottle
from service_kit.keyfiles import ChainAccount, Scrypt


class KeystoreRecord(BaseModel):
    """One account's V3 keystore (scrypt); the password is never stored."""

    model_config = ConfigDict(frozen=True)

    address: str
    keystore: dict[str, Any]
    task_id: str | None = None  # the task that created it: a redelivery finds it again
    created_at: float = Field(default_factory=time.time)
    # The key id of the API key that created it; None: the platform's (or made before
    # accounts had owners), for admin keys only.
    owner: str | None = None
    # What the faucet sends it, decided when it is made, so a redelivery sends the same.
    funded_wei: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class AccountLimits:
    """What a user API key may do with accounts (ProviderSettings declares each limit).
    Admin keys and the platform have no quota, and no throttle per key."""

    accounts_per_key: int
    faucet_wei_per_key: int
    unlock_failures_per_account: int
    unlock_failures_per_key: int
    unlock_failure_window_s: float


@dataclass
class _Unlocked:
    key: bytes
    expires_at: float


class AccountBook:
    """Create, unlock and sign-with accounts; the platform's own signers are always unlocked."""

    def __init__(
        self,
        table: TopicMirror[KeystoreRecord],
        scrypt: Scrypt,
        platform_signers: dict[str, ChainAccount],
        limits: AccountLimits | None = None,
        grants: UnlockGrants | None = None,
    ) -> None:
        """`limits` None: no quota and no throttle (the monolith baseline, unit tests);
        `grants` None: an unlock lives in this process only (the monolith baseline).
        Decrypts the platform signers' keystores: blocking, so build it in a thread."""
        self._table = table
        self._grants = grants
        self.scrypt = scrypt
        self._unlocked: dict[str, _Unlocked] = {}
        self._platform_keys = {name: a.private_key() for name, a in platform_signers.items()}
        self.platform_addresses = {name: a.address for name, a in platform_signers.items()}
        self._limits = limits
        # One key's creations are counted against its quota one at a time.
        self._create_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        if limits is not None:
            window = limits.unlock_failure_window_s
            self._account_failures = FailureThrottle(limits.unlock_failures_per_account, window)
            self._key_failures = FailureThrottle(limits.unlock_failures_per_key, window)

    # -- who may use an account --------------------------------------------------------

    def check_use(self, address: str, caller: Caller | None, field: str) -> None:
        """Refuse a caller that may not unlock or spend from this account (an address the
        platform does not hold is left to the operation to refuse)."""
        record = self._table.get(address)
        if record is not None and not may_use(caller, record.owner):
            raise NotAccountOwnerError(f"account {address} belongs to another API key", field=field)

    def addresses(self, caller: Caller | None = None) -> list[str]:
        """The accounts the caller may use, sorted: every one for an admin key."""
        return sorted(key for key, record in self._table.items() if may_use(caller, record.owner))

    # -- creating ------------------------------------------------------------------------

    async def create(
        self,
        password: str,
        funding_wei: int,
        task_id: str | None = None,
        caller: Caller | None = None,
    ) -> KeystoreRecord:
        """A new account owned by the caller, with what the faucet will send it (at most
        `funding_wei`); a user key past its quota is refused (AccountQuotaError)."""
        limits = self._limits
        if limits is None or caller is None or caller.is_admin:
            owner = None if caller is None else caller.key_id
            return await self._create(password, task_id, owner, funding_wei)
        async with self._create_locks[caller.key_id]:
            owned = [r for _, r in self._table.items() if r.owner == caller.key_id]
            if len(owned) >= limits.accounts_per_key:
                raise AccountQuotaError(
                    f"this API key has made its {limits.accounts_per_key} accounts"
                )
            budget_left = limits.faucet_wei_per_key - sum(r.funded_wei for r in owned)
            funding = max(0, min(funding_wei, budget_left))
            return await self._create(password, task_id, caller.key_id, funding)

    async def _create(
        self, password: str, task_id: str | None, owner: str | None, funding_wei: int
    ) -> KeystoreRecord:
        """scrypt runs in a thread, off the event loop, in one of the bounded slots."""
        account = Account.create()
        keystore = await self.scrypt.encrypt(account.key, password)
        record = KeystoreRecord(
            address=account.address,
            keystore=keystore,
            task_id=task_id,
            owner=owner,
            funded_wei=funding_wei,
        )
        await self._table.put(account.address, record)
        return record

    # -- unlocking -----------------------------------------------------------------------

    async def unlock(
        self, address: str, password: str, duration_s: float, caller: Caller | None = None
    ) -> float:
        """Decrypt the key into memory until the returned expiry time. The attempt counts
        as a failure from before scrypt runs until it succeeds, so attempts in flight
        count against the throttle too."""
        record = self._table.get(address)
        if record is None:
            raise UnknownAccountError(f"no keystore for {address}", field="address")
        throttled_key = caller.key_id if caller is not None and not caller.is_admin else None
        now = time.monotonic()
        self._refuse_if_throttled(address, throttled_key, now)
        self._count_failure(address, throttled_key, now)
        try:
            key = await self.scrypt.decrypt(record.keystore, password)
        except ValueError:
            raise WrongPasswordError(
                "the password does not unlock this account", field="password"
            ) from None
        self._withdraw_failure(address, throttled_key, now)
        expires_at = time.time() + duration_s
        self._unlocked[address] = _Unlocked(key, expires_at)
        if self._grants is not None:
            await self._grants.grant(address, key, record.owner, expires_at)
        return expires_at

    def _refuse_if_throttled(self, address: str, key_id: str | None, now: float) -> None:
        if self._limits is None:
            return
        wait = self._account_failures.wait_s(address, now)
        if wait > 0:
            raise UnlockThrottledError(
                f"too many failed unlocks of {address}; try again in {wait:.0f} s",
                field="address",
            )
        wait = 0.0 if key_id is None else self._key_failures.wait_s(key_id, now)
        if wait > 0:
            raise UnlockThrottledError(
                f"too many failed unlocks by this API key; try again in {wait:.0f} s"
            )

    def _count_failure(self, address: str, key_id: str | None, now: float) -> None:
        if self._limits is None:
            return
        self._account_failures.failed(address, now)
        if key_id is not None:
            self._key_failures.failed(key_id, now)

    def _withdraw_failure(self, address: str, key_id: str | None, now: float) -> None:
        if self._limits is None:
            return
        self._account_failures.forget(address)
        if key_id is not None:
            self._key_failures.withdraw(key_id, now)

    def key_for(self, signer: str) -> bytes:
        """The signing key of a platform signer name or an unlocked address."""
        if signer in self._platform_keys:
            return self._platform_keys[signer]
        now = time.time()
        unlocked = self._unlocked.get(signer)
        if unlocked is None or unlocked.expires_at <= now:
            self._unlocked.pop(signer, None)
            record = self._table.get(signer)
            if record is None:
                raise UnknownAccountError(f"no keystore for {signer}")
            granted = (
                None if self._grants is None else self._grants.key_of(signer, record.owner, now)
            )
            if granted is None:
                raise AccountLockedError(f"{signer} is locked: unlock it first")
            unlocked = _Unlocked(*granted)
            self._unlocked[signer] = unlocked
        return unlocked.key

    def address_of(self, signer: str) -> str:
        return self.platform_addresses.get(signer, signer)

    def created_by(self, task_id: str) -> KeystoreRecord | None:
        """The account a task already created (the task is being redelivered)."""
        for _, record in self._table.items():
            if record.task_id == task_id:
                return record
        return None
