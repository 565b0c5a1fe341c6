"""Unlocks that survive the provider that made them: grants on a shared table, with
in-memory tables (the real stack's provider kill and rebalance are in tests/faults)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from ethgw_wire.callers import Caller
from ethgw_wire.errors import AccountLockedError, NotAccountOwnerError
from ethgw_wire.kafka import encode
from ethgw_wire.sealing import GrantBox, ensure_sealing_keys
from ethgw_wire.topic_mirror import MemoryTable
from provider.accounts import AccountBook, KeystoreRecord
from provider.unlock_grants import UnlockGrant, UnlockGrants
from service_kit.keyfiles import Scrypt

ALICE = Caller(key_id="a11ce0000000", role="user")
BOB = Caller(key_id="b0b000000000", role="user")
PASSWORD = "right password"


class Platform:
    """The tables every provider mirrors, and providers made over them."""

    def __init__(self, folder: Path) -> None:
        self.keystores: MemoryTable[KeystoreRecord] = MemoryTable("accounts")
        self.grants: MemoryTable[UnlockGrant] = MemoryTable("unlock-grants")
        self.box = GrantBox.of_folder(ensure_sealing_keys(folder))

    def provider(self, box: GrantBox | None = None) -> AccountBook:
        grants = UnlockGrants(self.grants, box or self.box)
        return AccountBook(self.keystores, Scrypt(2, 4), {}, None, grants)


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return Platform(tmp_path / "sealing")


async def test_an_unlock_signs_on_a_provider_that_did_not_run_it(platform: Platform) -> None:
    """Unlocked on one provider, the account's key is at hand on another (crash, rebalance)."""
    first, second = platform.provider(), platform.provider()
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 300, ALICE)
    assert Account.from_key(second.key_for(address)).address == address


async def test_the_grant_holds_the_key_sealed_never_in_clear(platform: Platform) -> None:
    """The grant's record names the expiry and owner, and holds no private key bytes."""
    book = platform.provider()
    address = (await book.create(PASSWORD, 0, caller=ALICE)).address
    until = await book.unlock(address, PASSWORD, 300, ALICE)
    grant = platform.grants.get(address)
    assert grant is not None
    assert (grant.owner, grant.expires_at) == (ALICE.key_id, until)
    key = book.key_for(address)
    record = encode(grant)
    assert key.hex().encode() not in record
    assert key not in record


async def test_an_expired_grant_is_ignored_and_pruned(platform: Platform) -> None:
    """Past its expiry a grant unlocks nothing, and the sweep tombstones it."""
    first, second = platform.provider(), platform.provider()
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 1, ALICE)
    grants = UnlockGrants(platform.grants, platform.box)
    assert await grants.prune(time.time()) == 0
    assert grants.key_of(address, ALICE.key_id, time.time() + 2) is None
    assert await grants.prune(time.time() + 2) == 1
    assert platform.grants.get(address) is None
    with pytest.raises(AccountLockedError):
        second.key_for(address)


async def test_a_grant_sealed_with_another_key_unlocks_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    """A provider whose shared key differs (another platform) answers account_locked."""
    first = platform.provider()
    stranger = platform.provider(GrantBox.of_folder(ensure_sealing_keys(tmp_path / "other")))
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 300, ALICE)
    with pytest.raises(AccountLockedError):
        stranger.key_for(address)


async def test_a_grant_for_another_owner_unlocks_nothing(platform: Platform) -> None:
    """A grant whose owner is not the account's owner (a forged or stale record) is refused."""
    first, second = platform.provider(), platform.provider()
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 300, ALICE)
    grant = platform.grants.get(address)
    assert grant is not None
    await platform.grants.put(address, grant.model_copy(update={"owner": BOB.key_id}))
    with pytest.raises(AccountLockedError):
        second.key_for(address)


async def test_a_grant_with_a_later_expiry_written_in_does_not_open(platform: Platform) -> None:
    """The expiry is sealed with the key: a record pushed to a later expiry is refused."""
    first, second = platform.provider(), platform.provider()
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 300, ALICE)
    grant = platform.grants.get(address)
    assert grant is not None
    longer = grant.model_copy(update={"expires_at": grant.expires_at + 86_400})
    await platform.grants.put(address, longer)
    with pytest.raises(AccountLockedError):
        second.key_for(address)


async def test_the_owner_check_holds_on_a_provider_with_the_grant(platform: Platform) -> None:
    """Another user key is refused an account unlocked elsewhere, before any key is used."""
    first, second = platform.provider(), platform.provider()
    address = (await first.create(PASSWORD, 0, caller=ALICE)).address
    await first.unlock(address, PASSWORD, 300, ALICE)
    with pytest.raises(NotAccountOwnerError):
        second.check_use(address, BOB, "from")
    second.check_use(address, ALICE, "from")
