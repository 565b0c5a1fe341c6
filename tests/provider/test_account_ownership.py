"""Accounts belong to the API key that made them: the account book's rules, with an
in-memory table (the real stack's refusals are in tests/front_door/test_accounts.py)."""

from __future__ import annotations

import asyncio

import pytest

from ethgw_wire.callers import Caller
from ethgw_wire.errors import (
    AccountQuotaError,
    NotAccountOwnerError,
    UnlockThrottledError,
    WrongPasswordError,
)
from ethgw_wire.topic_mirror import MemoryTable
from provider.accounts import AccountBook, AccountLimits, KeystoreRecord
from service_kit.keyfiles import Scrypt

ALICE = Caller(key_id="a11ce0000000", role="user")
BOB = Caller(key_id="b0b000000000", role="user")
ADMIN = Caller(key_id="ad0000000000", role="admin")
PASSWORD = "right password"
ETHER = 10**18
LIMITS = AccountLimits(
    accounts_per_key=3,
    faucet_wei_per_key=2 * ETHER,
    unlock_failures_per_account=2,
    unlock_failures_per_key=3,
    unlock_failure_window_s=60.0,
)


def book() -> AccountBook:
    table: MemoryTable[KeystoreRecord] = MemoryTable("accounts")
    return AccountBook(table, Scrypt(2, 4), {}, LIMITS)


async def test_an_account_is_owned_by_the_key_that_made_it() -> None:
    """The record of a new account names its creator's key id."""
    record = await book().create(PASSWORD, ETHER, caller=ALICE)
    assert record.owner == ALICE.key_id


async def test_another_user_key_may_not_use_an_account() -> None:
    """Bob is refused Alice's account; Alice, an admin key and the platform are not."""
    accounts = book()
    address = (await accounts.create(PASSWORD, ETHER, caller=ALICE)).address
    with pytest.raises(NotAccountOwnerError):
        accounts.check_use(address, BOB, "from")
    for allowed in (ALICE, ADMIN, None):
        accounts.check_use(address, allowed, "from")


async def test_an_account_of_the_platform_is_for_admin_keys_only() -> None:
    """An account without an owner (made by the platform) refuses every user key."""
    accounts = book()
    address = (await accounts.create(PASSWORD, ETHER)).address
    with pytest.raises(NotAccountOwnerError):
        accounts.check_use(address, ALICE, "address")
    accounts.check_use(address, ADMIN, "address")


async def test_a_listing_shows_a_user_key_its_own_accounts_and_an_admin_key_all() -> None:
    """Alice lists hers, Bob his, an admin key both."""
    accounts = book()
    alice = (await accounts.create(PASSWORD, ETHER, caller=ALICE)).address
    bob = (await accounts.create(PASSWORD, ETHER, caller=BOB)).address
    assert accounts.addresses(ALICE) == [alice]
    assert accounts.addresses(BOB) == [bob]
    assert accounts.addresses(ADMIN) == sorted([alice, bob])


async def test_a_user_key_past_its_quota_is_refused() -> None:
    """The fourth account of a key with a quota of three is refused; another key is not."""
    accounts = book()
    for _ in range(3):
        await accounts.create(PASSWORD, ETHER, caller=ALICE)
    with pytest.raises(AccountQuotaError):
        await accounts.create(PASSWORD, ETHER, caller=ALICE)
    await accounts.create(PASSWORD, ETHER, caller=BOB)


async def test_an_admin_key_has_no_quota() -> None:
    """An admin key makes more accounts than a user key may, each fully funded."""
    accounts = book()
    made = [await accounts.create(PASSWORD, ETHER, caller=ADMIN) for _ in range(4)]
    assert [r.funded_wei for r in made] == [ETHER] * 4


async def test_the_faucet_funds_a_key_up_to_its_budget() -> None:
    """A budget of 2 ether at 1 ether each: the third account gets nothing."""
    accounts = book()
    made = [await accounts.create(PASSWORD, ETHER, caller=ALICE) for _ in range(3)]
    assert [r.funded_wei for r in made] == [ETHER, ETHER, 0]


async def test_concurrent_creations_of_one_key_respect_its_quota() -> None:
    """Five creations at once by a key with a quota of three: three are made."""
    accounts = book()
    outcomes = await asyncio.gather(
        *(accounts.create(PASSWORD, ETHER, caller=ALICE) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, KeystoreRecord) for o in outcomes) == 3
    assert sum(isinstance(o, AccountQuotaError) for o in outcomes) == 2


async def test_failed_unlocks_throttle_the_account_even_for_the_right_password() -> None:
    """Two wrong passwords (the limit): the right one is refused too, untried."""
    accounts = book()
    address = (await accounts.create(PASSWORD, ETHER, caller=ALICE)).address
    for _ in range(2):
        with pytest.raises(WrongPasswordError):
            await accounts.unlock(address, "wrong password", 60, ALICE)
    with pytest.raises(UnlockThrottledError) as refused:
        await accounts.unlock(address, PASSWORD, 60, ALICE)
    assert refused.value.field == "address"


async def test_failed_unlocks_throttle_the_key_across_its_accounts() -> None:
    """Three failures by one key over two accounts: its third account is refused, while
    another key still unlocks its own."""
    accounts = book()
    first, second, third = [
        (await accounts.create(PASSWORD, ETHER, caller=ALICE)).address for _ in range(3)
    ]
    for address in (first, first, second):
        with pytest.raises(WrongPasswordError):
            await accounts.unlock(address, "wrong password", 60, ALICE)
    with pytest.raises(UnlockThrottledError) as refused:
        await accounts.unlock(third, PASSWORD, 60, ALICE)
    assert "API key" in refused.value.message
    bobs = (await accounts.create(PASSWORD, ETHER, caller=BOB)).address
    assert await accounts.unlock(bobs, PASSWORD, 60, BOB) > 0


async def test_a_right_password_clears_the_accounts_failures() -> None:
    """One failure, then the right password: the account's count starts again."""
    accounts = book()
    address = (await accounts.create(PASSWORD, ETHER, caller=ADMIN)).address
    with pytest.raises(WrongPasswordError):
        await accounts.unlock(address, "wrong password", 60, ADMIN)
    await accounts.unlock(address, PASSWORD, 60, ADMIN)
    with pytest.raises(WrongPasswordError):
        await accounts.unlock(address, "wrong password", 60, ADMIN)
    assert await accounts.unlock(address, PASSWORD, 60, ADMIN) > 0


async def test_a_burst_of_unlocks_runs_scrypt_in_the_books_slots_only() -> None:
    """30 unlocks at once (no throttle: attempts in flight count as failures): every one
    succeeds, never more than the book's two scrypt slots run at once."""
    table: MemoryTable[KeystoreRecord] = MemoryTable("accounts")
    accounts = AccountBook(table, Scrypt(2**10, 2), {})
    address = (await accounts.create(PASSWORD, ETHER, caller=ADMIN)).address
    unlocks = [accounts.unlock(address, PASSWORD, 60, ADMIN) for _ in range(30)]
    assert all(expiry > 0 for expiry in await asyncio.gather(*unlocks))
    assert accounts.scrypt.peak == 2
