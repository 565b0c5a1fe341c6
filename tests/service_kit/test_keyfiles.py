"""Keystores: the standard scrypt cost by default, key files readable by their owner only,
and scrypt off the event loop, a bounded number of runs at a time (real scrypt, at low N)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from ethgw_wire.settings import KeystoreSettings
from service_kit.keyfiles import Scrypt, encrypt_keystore, ensure_account, load_account

LOW_N = 2**12
MID_N = 2**16  # ~0.15 s a run: 20 unbounded runs would queue a to_thread call for ~1.5 s
PASSWORD = "a password"


def test_the_default_scrypt_cost_is_the_standard_2_18(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ETHGW_KEYSTORE_SCRYPT_N, keystores are written at geth's standard N=2^18."""
    monkeypatch.delenv("ETHGW_KEYSTORE_SCRYPT_N", raising=False)
    assert KeystoreSettings().scrypt_n == 2**18


def test_a_scrypt_cost_that_is_no_power_of_two_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ETHGW_KEYSTORE_SCRYPT_N=3000 is refused at start, naming the setting's rule."""
    monkeypatch.setenv("ETHGW_KEYSTORE_SCRYPT_N", "3000")
    with pytest.raises(ValidationError, match="power of two"):
        KeystoreSettings()


def test_scrypt_slots_default_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ETHGW_KEYSTORE_SCRYPT_SLOTS, one scrypt run per core this process may use."""
    monkeypatch.delenv("ETHGW_KEYSTORE_SCRYPT_SLOTS", raising=False)
    assert KeystoreSettings().slots() == len(os.sched_getaffinity(0))


def test_a_chain_account_is_written_at_the_given_cost_with_owner_only_files(
    tmp_path: Path,
) -> None:
    """ensure_account writes its keystore at the N it is given, keystore and password 0600."""
    account = ensure_account(tmp_path / "accounts", "faucet", LOW_N)
    keystore = json.loads(account.keystore_path.read_text())
    assert keystore["crypto"]["kdfparams"]["n"] == LOW_N
    assert account.keystore_path.stat().st_mode & 0o777 == 0o600
    assert account.password_path.stat().st_mode & 0o777 == 0o600
    assert Account.from_key(account.private_key()).address == account.address


def test_loading_an_account_never_creates_one(tmp_path: Path) -> None:
    """load_account answers None for a name with no keystore, and writes nothing."""
    assert load_account(tmp_path, "admin") is None
    assert list(tmp_path.iterdir()) == []


async def test_a_wrong_password_is_a_value_error() -> None:
    """Scrypt.decrypt with a wrong password raises ValueError (the provider's 401)."""
    scrypt = Scrypt(LOW_N, 1)
    keystore = await scrypt.encrypt(Account.create().key, PASSWORD)
    with pytest.raises(ValueError, match="MAC"):
        await scrypt.decrypt(keystore, "not it")


async def test_a_burst_of_decrypts_runs_at_most_slots_at_once() -> None:
    """20 decrypts started together: never more than `slots` scrypt runs at once, and
    that many are reached."""
    scrypt = Scrypt(LOW_N, 2)
    key = Account.create().key
    keystore = encrypt_keystore(key, PASSWORD, LOW_N)
    keys = await asyncio.gather(*(scrypt.decrypt(keystore, PASSWORD) for _ in range(20)))
    assert keys == [bytes(key)] * 20
    assert scrypt.peak == 2
    assert scrypt.running == 0


async def test_a_burst_of_decrypts_leaves_the_default_executor_free() -> None:
    """While 20 decrypts at 2^16 wait for their slots, another task's to_thread call (the
    executor the rest of a service shares) is answered at once."""
    scrypt = Scrypt(MID_N, 2)
    keystore = encrypt_keystore(Account.create().key, PASSWORD, MID_N)
    burst = asyncio.gather(*(scrypt.decrypt(keystore, PASSWORD) for _ in range(20)))
    await asyncio.sleep(0.05)  # the burst holds its slots
    assert scrypt.running == 2
    started = time.monotonic()
    await asyncio.to_thread(lambda: None)
    waited_s = time.monotonic() - started
    await burst
    assert waited_s < 0.5
