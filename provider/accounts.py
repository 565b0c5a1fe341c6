"""Accounts on the provider side: keystores shared through a compacted topic,
keys decrypted only in memory and only for the unlock's duration.

Why a compacted topic and not a shared folder: every provider already talks
to Kafka, the topic is replicated and durable like the tasks themselves, and a
provider on another host (compose, Kubernetes) needs no shared volume.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field

from ethgw_wire.errors import AccountLockedError, UnknownAccountError, WrongPasswordError
from ethgw_wire.topic_mirror import TopicMirror
from service_kit.keyfiles import ChainAccount


class KeystoreRecord(BaseModel):
    """One account's V3 keystore (scrypt); the password is never stored."""

    model_config = ConfigDict(frozen=True)

    address: str
    keystore: dict[str, Any]
    task_id: str | None = None  # the task that created it: a redelivery finds it again
    created_at: float = Field(default_factory=time.time)


@dataclass
class _Unlocked:
    key: bytes
    expires_at: float


class AccountBook:
    """Create, unlock and sign-with accounts; the platform's own signers are always unlocked."""

    def __init__(
        self,
        table: TopicMirror[KeystoreRecord],
        scrypt_n: int,
        platform_signers: dict[str, ChainAccount],
    ) -> None:
        self._table = table
        self._scrypt_n = scrypt_n
        self._unlocked: dict[str, _Unlocked] = {}
        self._platform_keys = {name: a.private_key() for name, a in platform_signers.items()}
        self.platform_addresses = {name: a.address for name, a in platform_signers.items()}

    async def create(self, password: str, task_id: str | None = None) -> str:
        """A new account; scrypt runs in a thread, off the event loop."""
        account = Account.create()
        keystore = await asyncio.to_thread(
            Account.encrypt, account.key, password, kdf="scrypt", iterations=self._scrypt_n
        )
        record = KeystoreRecord(address=account.address, keystore=keystore, task_id=task_id)
        await self._table.put(account.address, record)
        return str(account.address)

    async def unlock(self, address: str, password: str, duration_s: float) -> float:
        """Decrypt the key into memory until the returned expiry time."""
        record = self._table.get(address)
        if record is None:
            raise UnknownAccountError(f"no keystore for {address}", field="address")
        try:
            key = await asyncio.to_thread(Account.decrypt, record.keystore, password)
        except ValueError:
            raise WrongPasswordError(
                "the password does not unlock this account", field="password"
            ) from None
        expires_at = time.time() + duration_s
        self._unlocked[address] = _Unlocked(bytes(key), expires_at)
        return expires_at

    def key_for(self, signer: str) -> bytes:
        """The signing key of a platform signer name or an unlocked address."""
        if signer in self._platform_keys:
            return self._platform_keys[signer]
        unlocked = self._unlocked.get(signer)
        if unlocked is None or unlocked.expires_at <= time.time():
            self._unlocked.pop(signer, None)
            if self._table.get(signer) is None:
                raise UnknownAccountError(f"no keystore for {signer}")
            raise AccountLockedError(f"{signer} is locked: unlock it first")
        return unlocked.key

    def address_of(self, signer: str) -> str:
        return self.platform_addresses.get(signer, signer)

    def created_by(self, task_id: str) -> str | None:
        """The account a task already created (the task is being redelivered)."""
        for address, record in self._table.items():
            if record.task_id == task_id:
                return address
        return None

    def addresses(self) -> list[str]:
        return sorted(key for key, _ in self._table.items())
