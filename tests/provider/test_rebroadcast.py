"""Signed transactions a node lost are sent again until their sender's nonce passes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from geth_cluster.cluster import GethCluster
from provider.chain import IndexingError, NodeClient, NodeClients
from provider.rebroadcast import Rebroadcaster
from provider.transactions import JournalRecord
from tests.provider.fake_node import FakeNode

GWEI = 10**9
AFTER_S = 6.0


def _signed(
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


def _rebroadcaster(client: NodeClient | None, max_watched: int = 100) -> Rebroadcaster:
    return Rebroadcaster(
        lambda: client, after_s=AFTER_S, interval_s=1.0, max_watched=max_watched, max_age_s=600.0
    )


def test_oldest_watched_transaction_goes_when_the_bound_is_reached() -> None:
    """The watch list is bounded: past max_watched, the oldest entry is let go."""
    rebroadcaster = _rebroadcaster(None, max_watched=2)
    account = Account.create()
    for nonce in range(3):
        rebroadcaster.watch(_signed(account, nonce, 1, account.address), time.time())
    assert rebroadcaster.watched == 2


def test_a_client_signed_transaction_without_a_known_nonce_is_not_watched() -> None:
    """Raw transactions carry nonce -1 in their record: nothing to compare with the chain."""
    rebroadcaster = _rebroadcaster(None)
    account = Account.create()
    record = _signed(account, 0, 1, account.address).model_copy(update={"nonce": -1})
    rebroadcaster.watch(record, time.time())
    assert rebroadcaster.watched == 0


def test_adopted_transactions_are_watched_once() -> None:
    """Records taken over from the journal join the watch list; one already watched and a
    client-signed one (no nonce) do not."""
    rebroadcaster = _rebroadcaster(None)
    account = Account.create()
    ours, theirs = (_signed(account, n, 1, account.address) for n in (0, 1))
    raw = _signed(account, 2, 1, account.address).model_copy(update={"nonce": -1})
    rebroadcaster.watch(ours, time.time())
    adopted = rebroadcaster.adopt([ours, theirs, raw], time.time())
    assert adopted == 1
    assert rebroadcaster.watching(theirs.tx_hash)


async def test_a_record_gone_from_the_journal_is_let_go_unsent() -> None:
    """A watched transaction whose record left the journal (refused, or settled by the
    provider that sent it) is forgotten, not sent again."""
    account = Account.create()
    gone, kept = (_signed(account, n, 1, account.address) for n in (0, 1))
    node = FakeNode()
    rebroadcaster = Rebroadcaster(
        lambda: node,
        after_s=AFTER_S,
        interval_s=1.0,
        max_watched=10,
        max_age_s=600.0,
        journaled=lambda record: record.tx_hash == kept.tx_hash,
    )
    now = time.time()
    rebroadcaster.adopt([gone, kept], now)
    swept = await rebroadcaster.sweep(now + AFTER_S)
    assert node.received == [kept.raw_tx]
    assert (swept.mined, swept.resent) == (1, 1)
    assert not rebroadcaster.watching(gone.tx_hash)


@pytest_asyncio.fixture(loop_scope="session")
async def node_client(geth_cluster: GethCluster) -> AsyncIterator[NodeClient]:
    clients = NodeClients(10.0)
    try:
        yield clients.get(geth_cluster.spec("node-1").rpc_url)
    finally:
        await clients.close()


async def _funded(cluster: GethCluster, node: NodeClient) -> LocalAccount:
    account: LocalAccount = Account.create()
    faucet: LocalAccount = Account.from_key(cluster.accounts.faucet.private_key())
    nonce = int(await node.request("eth_getTransactionCount", [faucet.address, "pending"]), 16)
    funding = _signed(faucet, nonce, cluster.settings.chain_id, account.address, 10**17)
    await node.request("eth_sendRawTransaction", [funding.raw_tx])
    await _mined(node, funding.tx_hash)
    return account


async def _mined(node: NodeClient, tx_hash: str, timeout_s: float = 30.0) -> dict[str, object]:
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


@pytest.mark.slow
async def test_lost_transaction_is_sent_again_and_unblocks_the_next_nonce(
    geth_cluster: GethCluster, node_client: NodeClient
) -> None:
    """Nonce 0 never reached a node, nonce 1 waits behind it: a sweep sends 0 again and
    both are mined; the next sweep forgets them."""
    account = await _funded(geth_cluster, node_client)
    chain_id = geth_cluster.settings.chain_id
    lost, stuck = (_signed(account, n, chain_id, account.address) for n in (0, 1))
    await node_client.request("eth_sendRawTransaction", [stuck.raw_tx])
    rebroadcaster = _rebroadcaster(node_client)
    now = time.time()
    rebroadcaster.watch(lost, now)
    rebroadcaster.watch(stuck, now)
    early = await rebroadcaster.sweep(now)  # not due yet: nothing is looked at
    first = await rebroadcaster.sweep(now + AFTER_S)
    receipts = [await _mined(node_client, r.tx_hash) for r in (lost, stuck)]
    second = await rebroadcaster.sweep(now + 2 * AFTER_S)
    assert early.resent == 0
    assert first.resent == 1  # the lost one; the stuck one was already known
    assert [r["status"] for r in receipts] == ["0x1", "0x1"]
    assert second.mined == 2
    assert rebroadcaster.watched == 0
