"""Signed transactions of throwaway accounts on the real test chain, for the provider's
tests of what happens to them on the nodes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from geth_cluster.cluster import GethCluster
from provider.chain import IndexingError, NodeClient
from provider.transactions import JournalRecord

GWEI = 10**9


def signed_transfer(
    account: LocalAccount, nonce: int, chain_id: int, to: str, value: int = 1
) -> JournalRecord:
    fields: dict[str, Any] = {"to": to, "value": value, "gas": 21000, "gasPrice": 2 * GWEI}
    signed = account.sign_transaction({**fields, "nonce": nonce, "chainId": chain_id})
    return JournalRecord(
        task_id=f"t-{nonce}",
        raw_tx=signed.raw_transaction.to_0x_hex(),
        tx_hash=signed.hash.to_0x_hex(),
        sender=account.address,
        nonce=nonce,
    )


async def funded_account(cluster: GethCluster, node: NodeClient) -> LocalAccount:
    account: LocalAccount = Account.create()
    faucet: LocalAccount = Account.from_key(cluster.accounts.faucet.private_key())
    nonce = int(await node.request("eth_getTransactionCount", [faucet.address, "pending"]), 16)
    funding = signed_transfer(faucet, nonce, cluster.settings.chain_id, account.address, 10**17)
    await node.request("eth_sendRawTransaction", [funding.raw_tx])
    await mined(node, funding.tx_hash)
    return account


async def mined(node: NodeClient, tx_hash: str, timeout_s: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            receipt = await node.request("eth_getTransactionReceipt", [tx_hash])
        except IndexingError:
            receipt = None
        if receipt:
            return dict(receipt)
        await asyncio.sleep(0.25)
    raise AssertionError(f"{tx_hash} not mined in {timeout_s}s")
