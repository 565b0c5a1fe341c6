"""Accounts belong to the API key that made them, through the real gateway, services,
Kafka, provider and chain: a second user key is refused, listings are per key, a user
key has quotas, failed unlocks are throttled, and an admin key still works everywhere.

The session provider's limits for user keys are SESSION_ACCOUNT_LIMITS (3 accounts,
2 ether of faucet money, 2 failed unlocks per account and 3 per key in 600 s); each test
that spends a limit has a key of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.pipeline_fixtures import Stack

pytestmark = pytest.mark.slow

PASSWORD = "alice's own password"
ETHER = 10**18
RECIPIENT = "0x" + "5a" * 20


@dataclass
class Account:
    address: str
    password: str


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error of a refusal with this status and code."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, response.text
    return error


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clients(stack: Stack) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients of two new user keys, alice and bob, and of the admin key."""
    keys = {
        "alice": await stack.new_user_key(f"alice-{secrets.token_hex(3)}"),
        "bob": await stack.new_user_key(f"bob-{secrets.token_hex(3)}"),
        "admin": stack.admin_key,
    }
    opened = {
        name: httpx.AsyncClient(base_url=stack.api, timeout=60, headers={"X-API-Key": key})
        for name, key in keys.items()
    }
    yield opened
    for client in opened.values():
        await client.aclose()


async def create(client: httpx.AsyncClient, password: str = PASSWORD) -> Account:
    data = await ok(await client.post("/admin/new", json={"password": password}))
    return Account(data["address"], password)


async def unlock(client: httpx.AsyncClient, account: Account, password: str = "") -> httpx.Response:
    body = {"address": account.address, "password": password or account.password}
    return await client.post("/admin/unlock", json=body)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def alices(clients: dict[str, httpx.AsyncClient]) -> Account:
    """An account alice made and unlocked."""
    account = await create(clients["alice"])
    await ok(await unlock(clients["alice"], account))
    return account


async def nonce_of(stack: Stack, address: str) -> int:
    """The account's pending transaction count, through the gateway's /rpc."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount"}
    async with httpx.AsyncClient(timeout=60, headers={"X-API-Key": stack.admin_key}) as client:
        answer = await client.post(
            f"{stack.gateway.url}/rpc", json={**call, "params": [address, "pending"]}
        )
    return int(answer.json()["result"], 16)


async def test_a_second_user_key_cannot_unlock_an_account(
    clients: dict[str, httpx.AsyncClient], alices: Account
) -> None:
    """Bob, with alice's right password, is refused 403 not_account_owner naming the address."""
    error = refused(await unlock(clients["bob"], alices), 403, "not_account_owner")
    assert error["field"] == "address"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tx/send", {"from": "{a}", "to": RECIPIENT, "value": 1}),
        ("/token/transfer", {"from": "{a}", "to": RECIPIENT, "value": 1}),
        ("/token", {"address": "{a}", "time": 1700000000, "projectId": 1}),
        (
            "/token/publish",
            {"address": "{a}", "time": 1, "projectName": "x", "projectHash": "0x" + "ab" * 32},
        ),
    ],
)
async def test_a_second_user_key_cannot_spend_from_an_unlocked_account(
    stack: Stack,
    clients: dict[str, httpx.AsyncClient],
    alices: Account,
    path: str,
    body: dict[str, Any],
) -> None:
    """Each write bob names alice's unlocked account in is 403 not_account_owner, and
    nothing is sent from it."""
    before = await nonce_of(stack, alices.address)
    named = {k: alices.address if v == "{a}" else v for k, v in body.items()}
    answer = await clients["bob"].post(path, json={**named, "waitReceipt": True})
    refused(answer, 403, "not_account_owner")
    assert await nonce_of(stack, alices.address) == before


async def test_the_owner_spends_from_its_own_account(
    clients: dict[str, httpx.AsyncClient], alices: Account
) -> None:
    """Alice sends from the account she made and unlocked."""
    body = {"from": alices.address, "to": RECIPIENT, "value": 1, "waitReceipt": True}
    sent = await ok(await clients["alice"].post("/tx/send", json=body))
    assert sent["from"] == alices.address


async def test_an_admin_key_unlocks_and_spends_from_a_users_account(
    clients: dict[str, httpx.AsyncClient], alices: Account
) -> None:
    """The admin key unlocks alice's account (with its password) and sends from it."""
    await ok(await unlock(clients["admin"], alices))
    body = {"from": alices.address, "to": RECIPIENT, "value": 1, "waitReceipt": True}
    sent = await ok(await clients["admin"].post("/tx/send", json=body))
    assert sent["status"] == "mined"


async def test_a_listing_shows_a_user_key_only_its_own_accounts(
    clients: dict[str, httpx.AsyncClient], alices: Account
) -> None:
    """GET /admin/list: alice sees her account, bob does not, the admin key does."""
    bobs = await create(clients["bob"], "bob's own password")
    listed = {
        name: set((await ok(await clients[name].get("/admin/list")))["accounts"])
        for name in ("alice", "bob", "admin")
    }
    assert listed["alice"] == {alices.address}
    assert listed["bob"] == {bobs.address}
    assert {alices.address, bobs.address} <= listed["admin"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def quota_run(stack: Stack) -> list[httpx.Response]:
    """Four account creations by a new user key, one after the other."""
    key = await stack.new_user_key(f"quota-{secrets.token_hex(3)}")
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": key}
    ) as client:
        return [await client.post("/admin/new", json={"password": PASSWORD}) for _ in range(4)]


async def test_a_user_key_past_its_account_quota_is_refused(
    quota_run: list[httpx.Response],
) -> None:
    """Three accounts are made; the fourth is 403 account_quota_exceeded."""
    assert [r.status_code for r in quota_run[:3]] == [200, 200, 200]
    refused(quota_run[3], 403, "account_quota_exceeded")


async def test_the_faucet_funds_a_user_keys_accounts_up_to_its_budget(
    stack: Stack, quota_run: list[httpx.Response]
) -> None:
    """With 2 ether of budget, the first two accounts get 1 ether each, the third none."""
    made = [r.json()["data"] for r in quota_run[:3]]
    assert [m["funded_wei"] for m in made] == [ETHER, ETHER, 0]
    assert made[2]["funding_tx"] is None
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as admin:
        balance = await ok(await admin.get("/eth/balance", params={"address": made[2]["address"]}))
    assert balance["balance_wei"] == 0


async def test_failed_unlocks_of_an_account_are_throttled(stack: Stack) -> None:
    """After 2 wrong passwords, even the right one is 429 unlock_throttled naming the
    address, untried."""
    key = await stack.new_user_key(f"guesser-{secrets.token_hex(3)}")
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": key}
    ) as client:
        account = await create(client)
        for _ in range(2):
            refused(await unlock(client, account, "a wrong guess"), 403, "wrong_password")
        error = refused(await unlock(client, account), 429, "unlock_throttled")
    assert error["field"] == "address"
    assert error["retriable"] is True


async def test_failed_unlocks_by_a_key_are_throttled_across_its_accounts(stack: Stack) -> None:
    """3 wrong passwords over two accounts: the key's third account, never failed, is 429
    unlock_throttled for the key."""
    key = await stack.new_user_key(f"spreader-{secrets.token_hex(3)}")
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": key}
    ) as client:
        first, second, third = [await create(client) for _ in range(3)]
        for account in (first, second, second):
            refused(await unlock(client, account, "a wrong guess"), 403, "wrong_password")
        error = refused(await unlock(client, third), 429, "unlock_throttled")
    assert "API key" in error["reason"]
