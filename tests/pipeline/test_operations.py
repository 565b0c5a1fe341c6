"""Every operation through Kafka and a real provider, checked against the chain."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import TypeAdapter

from consumer_service.task_client import TaskClient
from ethgw_wire.messages import ResultMessage, TaskStatus
from ethgw_wire.operations import get_operation
from ethgw_wire.platform_record import PlatformRecord
from tests.pipeline_fixtures import ProviderProcess, run_task

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("provider")]

PASSWORD = "correct horse battery"


def ok(result: ResultMessage) -> Any:
    """The data of a successful result, checked against its operation's result model."""
    assert result.status is TaskStatus.SUCCEEDED, result.error
    TypeAdapter(get_operation(result.operation).result).validate_python(result.data)
    return result.data


async def new_unlocked_account(tasks: TaskClient) -> str:
    address = str(ok(await run_task(tasks, "account.create", password=PASSWORD))["address"])
    ok(await run_task(tasks, "account.unlock", address=address, password=PASSWORD))
    return address


async def test_block_number_is_the_chain_height(tasks: TaskClient) -> None:
    """chain.block_number answers a positive height."""
    assert ok(await run_task(tasks, "chain.block_number"))["block_number"] > 0


async def test_connect_reports_a_peered_node(tasks: TaskClient, provider: ProviderProcess) -> None:
    """conn.connect answers from a node that has peers, and names the node and provider."""
    result = await run_task(tasks, "conn.connect")
    assert ok(result)["peers"] >= 1
    assert result.node is not None
    assert result.provider == provider.name


async def test_gas_price_is_at_least_the_minimum_tip(tasks: TaskClient) -> None:
    """chain.gas_price answers at least the sealer's 1 gwei minimum tip."""
    assert ok(await run_task(tasks, "chain.gas_price"))["gas_price"] >= 10**9


async def test_coinbase_is_the_clique_signer(tasks: TaskClient, platform: PlatformRecord) -> None:
    """chain.coinbase answers the sealer's address."""
    assert ok(await run_task(tasks, "chain.coinbase"))["coinbase"] == platform.sealer_address


async def test_node_accounts_are_empty_because_keys_live_in_providers(tasks: TaskClient) -> None:
    """node.accounts answers the node's own (empty) account list."""
    assert ok(await run_task(tasks, "node.accounts"))["accounts"] == []


async def test_created_account_is_listed_funded_and_usable(tasks: TaskClient) -> None:
    """account.create gives a funded account that accounts.list shows."""
    created = ok(await run_task(tasks, "account.create", password=PASSWORD))
    listed = ok(await run_task(tasks, "accounts.list"))["accounts"]
    balance = ok(await run_task(tasks, "eth.balance", address=created["address"]))
    assert created["address"] in listed
    assert balance["balance_wei"] == created["funded_wei"]


async def test_send_ether_moves_value_and_is_readable_by_hash(tasks: TaskClient) -> None:
    """eth.send mines a transfer; tx.by_hash, tx.receipt and the block queries find it."""
    sender = await new_unlocked_account(tasks)
    recipient = "0x" + secrets.token_hex(20)
    sent = ok(
        await run_task(
            tasks, "eth.send", wait_receipt=True, to=recipient, value=777, **{"from": sender}
        )
    )
    tx = ok(await run_task(tasks, "tx.by_hash", tx_hash=sent["tx_hash"]))
    receipt = ok(await run_task(tasks, "tx.receipt", tx_hash=sent["tx_hash"]))
    block = ok(await run_task(tasks, "block.by_number", block_number=sent["block_number"]))
    by_hash = ok(await run_task(tasks, "block.by_hash", block_hash=block["hash"]))
    count = ok(await run_task(tasks, "block.tx_count", block_number=sent["block_number"]))
    balance = ok(await run_task(tasks, "eth.balance", address=recipient))
    assert tx["from"] == sender.lower()
    assert receipt["status"] == "0x1"
    assert sent["tx_hash"] in block["transactions"]
    assert by_hash["number"] == block["number"]
    assert count["count"] >= 1
    assert balance["balance_wei"] == 777


async def test_token_operations_keep_balances_and_supply_consistent(tasks: TaskClient) -> None:
    """add, delete, set and transfer change balances and the total supply as they should."""
    alice = await new_unlocked_account(tasks)
    bob = "0x" + secrets.token_hex(20)
    before = ok(await run_task(tasks, "token.total"))["total_supply"]
    ok(await run_task(tasks, "token.mint", address=alice, value=100, wait_receipt=True))
    ok(await run_task(tasks, "token.burn", address=alice, value=30, wait_receipt=True))
    ok(
        await run_task(
            tasks, "token.transfer", to=bob, value=20, wait_receipt=True, **{"from": alice}
        )
    )
    ok(await run_task(tasks, "token.set", address=bob, value=50, wait_receipt=True))
    alice_balance = ok(await run_task(tasks, "token.balance", address=alice))["balance"]
    bob_balance = ok(await run_task(tasks, "token.balance", address=bob))["balance"]
    after = ok(await run_task(tasks, "token.total"))["total_supply"]
    assert alice_balance == 50
    assert bob_balance == 50
    assert after - before == 100


async def test_publish_and_buy_a_project(tasks: TaskClient, platform: PlatformRecord) -> None:
    """A publisher is rewarded, a buyer pays the default price, both are listed."""
    publisher = await new_unlocked_account(tasks)
    buyer = await new_unlocked_account(tasks)
    ok(await run_task(tasks, "token.mint", address=buyer, value=1000, wait_receipt=True))
    published = ok(
        await run_task(
            tasks,
            "token.publish",
            address=publisher,
            time=1700000000,
            project_name="Fund A",
            project_hash="0x" + secrets.token_hex(32),
            wait_receipt=True,
        )
    )
    bought = ok(
        await run_task(
            tasks,
            "token.buy",
            address=buyer,
            time=1700000100,
            project_id=published["project_id"],
            wait_receipt=True,
        )
    )
    projects = ok(await run_task(tasks, "projects.list", offset=0, limit=500))["projects"]
    purchases = ok(await run_task(tasks, "projects.purchases", project_id=published["project_id"]))[
        "purchases"
    ]
    project = next(p for p in projects if p["id"] == published["project_id"])
    publisher_tokens = ok(await run_task(tasks, "token.balance", address=publisher))["balance"]
    assert project["publisher"] == publisher
    assert project["name"] == "Fund A"
    assert purchases == [
        {
            "purchase_id": bought["purchase_id"],
            "buyer": buyer,
            "price": project["price"],
            "time": 1700000100,
        }
    ]
    assert publisher_tokens == 100 + project["price"]  # default reward + the price


async def test_deploy_returns_the_contract_address_with_code(tasks: TaskClient) -> None:
    """contract.deploy of the token's own artifact answers an address that holds code."""
    from ethgw_wire.artifacts import load_artifact

    artifact = load_artifact("PlatformToken")
    deployed = ok(
        await run_task(
            tasks, "contract.deploy", abi=artifact.abi, bytecode=artifact.bytecode, args=[1, 2]
        )
    )
    code = ok(
        await run_task(
            tasks, "rpc.call", method="eth_getCode", params=[deployed["contract_address"], "latest"]
        )
    )
    assert deployed["status"] == "mined"
    assert len(code) > 2


async def test_raw_transaction_is_broadcast(tasks: TaskClient, geth_cluster: Any) -> None:
    """rpc.send_raw broadcasts a transaction the client signed itself."""
    from eth_account import Account

    faucet = geth_cluster.accounts.faucet
    nonce_hex = ok(
        await run_task(
            tasks, "rpc.call", method="eth_getTransactionCount", params=[faucet.address, "pending"]
        )
    )
    signed = Account.sign_transaction(
        {
            "to": "0x" + "22" * 20,
            "value": 5,
            "gas": 21000,
            "gasPrice": 2 * 10**9,
            "nonce": int(nonce_hex, 16),
            "chainId": geth_cluster.settings.chain_id,
        },
        faucet.private_key(),
    )
    sent = ok(
        await run_task(
            tasks, "rpc.send_raw", raw_tx=signed.raw_transaction.to_0x_hex(), wait_receipt=True
        )
    )
    assert sent["tx_hash"] == signed.hash.to_0x_hex()
    assert sent["status"] == "mined"
