"""Signed transactions a node lost are sent again until their sender's nonce passes them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from eth_account import Account

from geth_cluster.cluster import GethCluster
from provider.chain import NodeClient, NodeClients
from provider.rebroadcast import Rebroadcaster
from tests.provider.fake_node import FakeNode
from tests.provider.signed_records import funded_account, mined, signed_transfer

AFTER_S = 6.0


def _rebroadcaster(client: NodeClient | None, max_watched: int = 100) -> Rebroadcaster:
    return Rebroadcaster(
        lambda: client, after_s=AFTER_S, interval_s=1.0, max_watched=max_watched, max_age_s=600.0
    )


def test_oldest_watched_transaction_goes_when_the_bound_is_reached() -> None:
    """The watch list is bounded: past max_watched, the oldest entry is let go."""
    rebroadcaster = _rebroadcaster(None, max_watched=2)
    account = Account.create()
    for nonce in range(3):
        rebroadcaster.watch(signed_transfer(account, nonce, 1, account.address), time.time())
    assert rebroadcaster.watched == 2


def test_a_client_signed_transaction_without_a_known_nonce_is_not_watched() -> None:
    """Raw transactions carry nonce -1 in their record: nothing to compare with the chain."""
    rebroadcaster = _rebroadcaster(None)
    account = Account.create()
    record = signed_transfer(account, 0, 1, account.address).model_copy(update={"nonce": -1})
    rebroadcaster.watch(record, time.time())
    assert rebroadcaster.watched == 0


def test_adopted_transactions_are_watched_once() -> None:
    """Records taken over from the journal join the watch list; one already watched and a
    client-signed one (no nonce) do not."""
    rebroadcaster = _rebroadcaster(None)
    account = Account.create()
    ours, theirs = (signed_transfer(account, n, 1, account.address) for n in (0, 1))
    raw = signed_transfer(account, 2, 1, account.address).model_copy(update={"nonce": -1})
    rebroadcaster.watch(ours, time.time())
    adopted = rebroadcaster.adopt([ours, theirs, raw], time.time())
    assert adopted == 1
    assert rebroadcaster.watching(theirs.tx_hash)


async def test_a_record_gone_from_the_journal_is_let_go_unsent() -> None:
    """A watched transaction whose record left the journal (refused, or settled by the
    provider that sent it) is forgotten, not sent again."""
    account = Account.create()
    gone, kept = (signed_transfer(account, n, 1, account.address) for n in (0, 1))
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


@pytest.mark.slow
async def test_lost_transaction_is_sent_again_and_unblocks_the_next_nonce(
    geth_cluster: GethCluster, node_client: NodeClient
) -> None:
    """Nonce 0 never reached a node, nonce 1 waits behind it: a sweep sends 0 again and
    both are mined; the next sweep forgets them."""
    account = await funded_account(geth_cluster, node_client)
    chain_id = geth_cluster.settings.chain_id
    lost, stuck = (signed_transfer(account, n, chain_id, account.address) for n in (0, 1))
    await node_client.request("eth_sendRawTransaction", [stuck.raw_tx])
    rebroadcaster = _rebroadcaster(node_client)
    now = time.time()
    rebroadcaster.watch(lost, now)
    rebroadcaster.watch(stuck, now)
    early = await rebroadcaster.sweep(now)  # not due yet: nothing is looked at
    first = await rebroadcaster.sweep(now + AFTER_S)
    receipts = [await mined(node_client, r.tx_hash) for r in (lost, stuck)]
    second = await rebroadcaster.sweep(now + 2 * AFTER_S)
    assert early.resent == 0
    assert first.resent == 1  # the lost one; the stuck one was already known
    assert [r["status"] for r in receipts] == ["0x1", "0x1"]
    assert second.mined == 2
    assert rebroadcaster.watched == 0
