"""Accounts kept as files: a scrypt-encrypted V3 keystore plus a password file
readable by its owner only (the chain's sealer, the faucet, the platform admin)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_utils.address import to_checksum_address

KEYSTORE_SCRYPT_N = 2**14  # geth's "light" scrypt cost: these are local dev keys


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
        return bytes(Account.decrypt(keystore, password))


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_account(accounts_dir: Path, name: str) -> ChainAccount:
    """Load the named account, or create it with a random password on first use."""
    keystore_path = accounts_dir / f"{name}.json"
    password_path = accounts_dir / f"{name}.password"
    if not keystore_path.exists():
        password = secrets.token_hex(16)
        account = Account.create()
        keystore = Account.encrypt(
            account.key, password, kdf="scrypt", iterations=KEYSTORE_SCRYPT_N
        )
        write_private(password_path, password)
        write_private(keystore_path, json.dumps(keystore))
    address = json.loads(keystore_path.read_text())["address"]
    return ChainAccount(
        name=name,
        address=_checksum(address),
        keystore_path=keystore_path,
        password_path=password_path,
    )


def load_account(accounts_dir: Path, name: str) -> ChainAccount | None:
    """The named account if its files exist; never creates one."""
    if not (accounts_dir / f"{name}.json").exists():
        return None
    return ensure_account(accounts_dir, name)


def _checksum(address: str) -> str:
    return str(to_checksum_address("0x" + address.removeprefix("0x")))
