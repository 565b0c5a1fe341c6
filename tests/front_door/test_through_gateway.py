"""The app's REST API through the real gateway, services, Kafka, providers and chain."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from ethgw_wire.settings import KafkaSettings
from geth_cluster.cluster import GethCluster
from tests.pipeline_fixtures import Stack
from tests.services.test_services import _task_count

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


@pytest_asyncio.fixture(loop_scope="session")
async def admin(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as client:
        yield client


async def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def unlocked_account(admin: httpx.AsyncClient) -> str:
    address = str(
        (await data(await admin.post("/admin/new", json={"password": PASSWORD})))["address"]
    )
    await data(await admin.post("/admin/unlock", json={"address": address, "password": PASSWORD}))
    return address


async def test_private_equity_flow(admin: httpx.AsyncClient) -> None:
    """Two accounts; the publisher is rewarded, the buyer pays, supply and listings agree."""
    publisher, buyer = await asyncio.gather(unlocked_account(admin), unlocked_account(admin))
    supply_before = (await data(await admin.get("/token/total")))["total_supply"]
    await data(
        await admin.post("/token/add", json={"address": buyer, "value": 300, "waitReceipt": True})
    )
    published = await data(
        await admin.post(
            "/token/publish",
            json={
                "address": publisher,
                "time": 1700000000,
                "projectName": "Growth Fund",
                "projectHash": "0x" + secrets.token_hex(32),
                "price": 120,
                "waitReceipt": True,
            },
        )
    )
    bought = await data(
        await admin.post(
            "/token",
            json={
                "address": buyer,
                "time": 1700000500,
                "projectId": published["project_id"],
                "waitReceipt": True,
            },
        )
    )
    pid = published["project_id"]
    projects = (await data(await admin.get("/projects", params={"limit": 500})))["projects"]
    purchases = (await data(await admin.get(f"/projects/{pid}/purchases")))["purchases"]
    publisher_tokens = (
        await data(await admin.get("/token/balance", params={"address": publisher}))
    )["balance"]
    buyer_tokens = (await data(await admin.get("/token/balance", params={"address": buyer})))[
        "balance"
    ]
    supply_after = (await data(await admin.get("/token/total")))["total_supply"]
    assert {"id": pid, "publisher": publisher, "price": 120}.items() <= next(
        p for p in projects if p["id"] == pid
    ).items()
    assert purchases[0]["purchase_id"] == bought["purchase_id"]
    assert purchases[0]["buyer"] == buyer
    assert publisher_tokens == 100 + 120
    assert buyer_tokens == 300 - 120
    assert supply_after - supply_before == 300 + 100


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/conn/connect", {}),
        ("/conn/blockNum", {}),
        ("/conn/gasPrice", {}),
        ("/conn/coinbase", {}),
        ("/conn/accounts", {}),
        ("/admin/list", {}),
        ("/eth/balance", {"address": "0x" + "12" * 20}),
        ("/token/balance", {"address": "0x" + "12" * 20}),
        ("/token/total", {}),
        ("/tx/blocknumber", {"blockNumber": 1}),
        ("/tx/txNum", {"blockNumber": 1}),
        ("/projects", {}),
    ],
)
async def test_read_endpoint_answers(
    admin: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> None:
    """Each read endpoint of tables 4.2 and 5.1 answers 200 with data."""
    assert await data(await admin.get(path, params=params)) is not None


async def test_transaction_queries_find_a_sent_transaction(admin: httpx.AsyncClient) -> None:
    """tx/send, then tx/txhash, tx/receipt and tx/blockhash find it."""
    sender = await unlocked_account(admin)
    sent = await data(
        await admin.post(
            "/tx/send",
            json={"from": sender, "to": "0x" + "13" * 20, "value": 5, "waitReceipt": True},
        )
    )
    tx = await data(await admin.get("/tx/txhash", params={"txHash": sent["tx_hash"]}))
    receipt = await data(await admin.get("/tx/receipt", params={"txHash": sent["tx_hash"]}))
    block = await data(await admin.get("/tx/blockhash", params={"blockHash": tx["blockHash"]}))
    assert receipt["status"] == "0x1"
    assert sent["tx_hash"] in block["transactions"]


async def test_deploy_through_the_gateway_returns_an_address(admin: httpx.AsyncClient) -> None:
    """contract/deploy (admin) answers the new contract's address."""
    from ethgw_wire.artifacts import load_artifact

    artifact = load_artifact("PlatformToken")
    deployed = await data(
        await admin.post(
            "/contract/deploy",
            json={"abi": artifact.abi, "bytecode": artifact.bytecode, "args": [1, 1]},
        )
    )
    assert deployed["contract_address"].startswith("0x")


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "field"),
    [
        ("GET", "/token/balance", None, {"address": "0x12"}, 422, "address"),
        (
            "POST",
            "/token/transfer",
            {"from": "0x" + "11" * 20, "to": "0x" + "11" * 20, "value": -3},
            None,
            422,
            "value",
        ),
        ("POST", "/admin/unlock", {"address": "0x" + "11" * 20}, None, 422, "password"),
        ("POST", "/admin/new", {"password": "x" * 400_000}, None, 413, None),
    ],
)
async def test_bad_input_is_refused_and_nothing_reaches_kafka(
    admin: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    params: Any,
    status: int,
    field: str | None,
) -> None:
    """Bad input answers its 4xx naming the field, and no task is put on Kafka."""
    settings = KafkaSettings()
    before = await _task_count(settings.topic_read) + await _task_count(settings.topic_write)
    response = await admin.request(method, path, json=body, params=params)
    after = await _task_count(settings.topic_read) + await _task_count(settings.topic_write)
    assert response.status_code == status
    assert response.json()["status"] == status
    if field is not None:
        assert response.json()["error"]["field"] == field
    assert after == before


async def test_unknown_task_id_is_404(admin: httpx.AsyncClient) -> None:
    """An unknown task id answers 404."""
    assert (await admin.get(f"/tasks/{'cd' * 16}")).status_code == 404


async def test_keys_are_required_and_roles_enforced(stack: Stack) -> None:
    """No key or a wrong key is 401; a user key on an admin endpoint is 403."""
    async with httpx.AsyncClient(base_url=stack.api, timeout=30) as anonymous:
        missing = await anonymous.get("/conn/blockNum")
        wrong = await anonymous.get("/conn/blockNum", headers={"X-API-Key": "ethgw_wrong"})
        user_read = await anonymous.get("/conn/blockNum", headers={"X-API-Key": stack.user_key})
        user_mint = await anonymous.post(
            "/token/add",
            headers={"X-API-Key": stack.user_key},
            json={"address": "0x" + "11" * 20, "value": 1},
        )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert user_read.status_code == 200
    assert user_mint.status_code == 403


async def test_reads_keep_succeeding_when_a_read_instance_dies(
    stack: Stack, admin: httpx.AsyncClient
) -> None:
    """kill -9 of one read instance during a stream of GETs: every GET succeeds."""

    async def read() -> int:
        return (await admin.get("/conn/blockNum")).status_code

    statuses: list[int] = []
    for index in range(60):
        if index == 15:
            stack.readers[0].kill()
        statuses.extend(await asyncio.gather(read(), read()))
    assert statuses == [200] * 120


async def test_web3_client_reads_and_sends_through_rpc(
    stack: Stack, geth_cluster: GethCluster
) -> None:
    """web3.py pointed at /rpc reads the chain and sends a signed transaction."""
    provider = AsyncHTTPProvider(
        f"{stack.gateway.url}/rpc",
        request_kwargs={"headers": {"X-API-Key": stack.admin_key}, "timeout": 60},
    )
    w3 = AsyncWeb3(provider)
    try:
        faucet = geth_cluster.accounts.faucet
        height = await w3.eth.block_number
        nonce = await w3.eth.get_transaction_count(faucet.address, "pending")  # type: ignore[arg-type]
        signed = Account.sign_transaction(
            {
                "to": "0x" + "14" * 20,
                "value": 9,
                "gas": 21000,
                "gasPrice": 2 * 10**9,
                "nonce": nonce,
                "chainId": await w3.eth.chain_id,
            },
            faucet.private_key(),
        )
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    finally:
        await provider.disconnect()
    assert height > 0
    assert receipt["status"] == 1
