"""Accounts kept as files: a scrypt-encrypted V3 keystore plus a password file
readable by its owner only (the chain's sealer, the faucet, the platform admin); and
`Scrypt`, which runs a keystore's key derivation off the event loop, a bounded number at
a time."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_account import Account
from eth_utils.address import to_checksum_address

T = TypeVar("T")


class Scrypt:
    """Keystore encryption and decryption at a scrypt cost N, each run in a thread and at
    most `slots` at once.

    One run at N=2^18 holds a core and 256 MiB for about half a second (docs/pipeline.md,
    "Keystores"): unbounded, a burst of unlocks would take every thread of the default
    executor (which the rest of a service shares) and a quarter GiB each.
    """

    def __init__(self, n: int, slots: int) -> None:
        self.n = n
        self.slots = slots
        self._slots = asyncio.Semaphore(slots)
        self.running = 0
        self.peak = 0  # the most runs seen at once (tests check the bound with it)

    async def encrypt(self, key: bytes, password: str) -> dict[str, Any]:
        return await self._run(encrypt_keystore, key, password, self.n)

    async def decrypt(self, keystore: dict[str, Any], password: str) -> bytes:
        """The key; ValueError when the password is wrong."""
        return await self._run(decrypt_keystore, keystore, password)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        async with self._slots:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                return await asyncio.to_thread(work, *args)
            finally:
                self.running -= 1


def encrypt_keystore(key: bytes, password: str, scrypt_n: int) -> dict[str, Any]:
    """A V3 keystore of the key, scrypt at cost N (blocking: ~0.5 s of a core at 2^18)."""
    keystore: dict[str, Any] = Account.encrypt(key, password, kdf="scrypt", iterations=scrypt_n)
    return keystore


def decrypt_keystore(keystore: dict[str, Any], password: str) -> bytes:
    """The key of a V3 keystore at the keystore's own cost (blocking)."""
    return bytes(Account.decrypt(keystore, password))


@dataclass(frozen=True)
class ChainAccount:
    """An account whose encrypted keystore and password file live in the state folder."""

    name: str
    address: str
    keystore_path: Path
    password_path: Path

    def private_key(self) -> bytes:
        """Decrypt the key (for signing in the process that asks; never logged)."""
        keystore = json.loads(self.keystore_path.read_text())
        password = self.password_path.read_text().strip()
        return decrypt_keystore(keystore, password)


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_random_secret(path: Path) -> str:
    """The secret in `path` (stripped; empty if the file is), made random (0600, its folder
    0700) on first use.

    Safe when several processes start at once: written to a temporary file and linked into
    place, so exactly one creator wins and everyone reads the winner's (never a half-written
    file).
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        write_private(temporary, secrets.token_urlsafe(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; its secret is the one
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def ensure_account(accounts_dir: Path, name: str, scrypt_n: int) -> ChainAccount:
    """Load the named account, or create it with a random password on first use, its
    keystore at scrypt cost `scrypt_n` (KeystoreSettings.scrypt_n)."""
    keystore_path = accounts_dir / f"{name}.json"
    if not keystore_path.exists():
        password = secrets.token_hex(16)
        keystore = encrypt_keystore(Account.create().key, password, scrypt_n)
        write_private(accounts_dir / f"{name}.password", password)
        write_private(keystore_path, json.dumps(keystore))
    account = load_account(accounts_dir, name)
    assert account is not None  # written above
    return account


def load_account(accounts_dir: Path, name: str) -> ChainAccount | None:
    """The named account if its files exist; never creates one."""
    keystore_path = accounts_dir / f"{name}.json"
    if not keystore_path.exists():
        return None
    address = json.loads(keystore_path.read_text())["address"]
    return ChainAccount(
        name=name,
        address=_checksum(address),
        keystore_path=keystore_path,
        password_path=accounts_dir / f"{name}.password",
    )


def _checksum(address: str) -> str:
    return str(to_checksum_address("0x" + address.removeprefix("0x")))
