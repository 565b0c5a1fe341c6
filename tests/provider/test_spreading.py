"""A transaction one node took is handed to the other routable nodes, without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from prometheus_client import REGISTRY

from ethgw_wire.errors import NodeRefusedError
from geth_cluster.cluster import GethCluster
from provider.chain import AlreadyKnownError, NodeClient, NodeClients, NodeUnreachableError
from provider.spreading import Peer, TransactionSpreader, spread_targets
from tests.provider.fake_node import FakeNode
from tests.provider.signed_records import funded_account, mined, signed_transfer

RAW_TX = signed_transfer(Account.create(), 0, 1, Account.create().address).raw_tx


class _HeldNode(FakeNode):
    """Answers no send until `release` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = asyncio.Event()

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        await self.release.wait()
        return await super().request(method, params)


class _UnreachableNode(FakeNode):
    async def request(self, method: str, params: Sequence[Any]) -> Any:
        raise NodeUnreachableError("ClientConnectorError", "connection refused")


def _peers(*nodes: FakeNode) -> list[Peer]:
    return [Peer(node.url, node) for node in nodes]


def _outcomes() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(
            "ethgw_provider_spread_sends_total", {"outcome": outcome}
        )
        or 0.0
        for outcome in ("sent", "known", "failed", "skipped")
    }


def test_the_node_that_took_the_transaction_is_not_sent_it_again() -> None:
    """The targets are every peer but the taker."""
    one, two, three = FakeNode("node-1"), FakeNode("node-2"), FakeNode("node-3")
    targets = spread_targets(_peers(one, two, three), taken_by=two.url)
    assert [peer.url for peer in targets] == [one.url, three.url]


async def test_every_other_node_receives_the_bytes() -> None:
    """Spreading a transaction node-1 took puts it in node-2's and node-3's pools."""
    one, two, three = FakeNode("node-1"), FakeNode("node-2"), FakeNode("node-3")
    spreader = TransactionSpreader(lambda: _peers(one, two, three), max_in_flight=8)
    spreader.spread(RAW_TX, taken_by=one.url)
    await spreader.settled()
    assert (one.received, two.received, three.received) == ([], [RAW_TX], [RAW_TX])


async def test_spreading_returns_before_any_node_answers() -> None:
    """The write's answer never waits on a node it was not sent to."""
    held = _HeldNode("node-2")
    spreader = TransactionSpreader(lambda: _peers(held), max_in_flight=8)
    spreader.spread(RAW_TX, taken_by="http://node-1")
    assert spreader.in_flight == 1
    held.release.set()
    await spreader.settled()
    assert held.received == [RAW_TX]


async def test_sends_past_the_bound_are_skipped() -> None:
    """With max_in_flight sends under way (a slow node), further ones are left to gossip."""
    held_one, held_two = _HeldNode("node-2"), _HeldNode("node-3")
    spreader = TransactionSpreader(lambda: _peers(held_one, held_two), max_in_flight=1)
    before = _outcomes()
    spreader.spread(RAW_TX, taken_by="http://node-1")
    assert spreader.in_flight == 1
    assert _outcomes()["skipped"] == before["skipped"] + 1
    await spreader.close()


async def test_a_refusal_or_a_dead_node_is_counted_and_raises_nothing() -> None:
    """A node that refuses the bytes or does not answer is counted as failed."""
    refusing, dead = FakeNode("node-2"), _UnreachableNode("node-3")
    refusing.refusals.append(NodeRefusedError("insufficient funds for gas * price + value"))
    spreader = TransactionSpreader(lambda: _peers(refusing, dead), max_in_flight=8)
    before = _outcomes()
    spreader.spread(RAW_TX, taken_by="http://node-1")
    await spreader.settled()
    assert _outcomes()["failed"] == before["failed"] + 2


async def test_a_node_that_already_has_it_counts_as_known() -> None:
    """A node that gossip reached first answers "already known"."""
    node = FakeNode("node-2")
    node.refusals.append(AlreadyKnownError("already known"))
    spreader = TransactionSpreader(lambda: _peers(node), max_in_flight=8)
    before = _outcomes()
    spreader.spread(RAW_TX, taken_by="http://node-1")
    await spreader.settled()
    after = _outcomes()
    assert (after["known"] - before["known"], after["failed"] - before["failed"]) == (1, 0)


async def test_closing_cancels_the_sends_under_way() -> None:
    """The provider's shutdown does not wait on a node that does not answer."""
    held = _HeldNode("node-2")
    spreader = TransactionSpreader(lambda: _peers(held), max_in_flight=8)
    spreader.spread(RAW_TX, taken_by="http://node-1")
    await spreader.close()
    assert spreader.in_flight == 0
    assert held.received == []


@pytest_asyncio.fixture(loop_scope="session")
async def node_clients(geth_cluster: GethCluster) -> AsyncIterator[list[NodeClient]]:
    clients = NodeClients(10.0)
    try:
        yield [clients.get(geth_cluster.spec(name).rpc_url) for name in ("node-1", "node-2")]
    finally:
        await clients.close()


async def _queued_nonces(node: NodeClient, address: str) -> list[int]:
    content = await node.request("txpool_contentFrom", [address])
    return sorted(int(nonce) for nonce in content["queued"])


@pytest.mark.slow
async def test_a_transaction_behind_a_nonce_gap_reaches_the_other_node(
    geth_cluster: GethCluster, node_clients: list[NodeClient]
) -> None:
    """Nonce 1 sent to node-1 before nonce 0 waits in node-1's queue, which geth does not
    gossip; spread, it waits in node-2's queue too, and both are mined once 0 is sent."""
    first, second = node_clients
    account = await funded_account(geth_cluster, first)
    chain_id = geth_cluster.settings.chain_id
    earlier, later = (signed_transfer(account, n, chain_id, account.address) for n in (0, 1))
    spreader = TransactionSpreader(
        lambda: [Peer(first.url, first), Peer(second.url, second)], max_in_flight=8
    )
    await first.send_raw_transaction(later.raw_tx)
    spreader.spread(later.raw_tx, taken_by=first.url)
    await spreader.settled()
    queued_on_second = await _queued_nonces(second, account.address)
    await second.send_raw_transaction(earlier.raw_tx)
    receipts = [await mined(first, record.tx_hash) for record in (earlier, later)]
    assert queued_on_second == [1]
    assert [receipt["status"] for receipt in receipts] == ["0x1", "0x1"]


async def test_a_bound_of_zero_turns_the_spreading_off() -> None:
    """ETHGW_PROVIDER_SPREAD_MAX_IN_FLIGHT=0: no other node is sent the bytes, none counted."""
    node = FakeNode("node-2")
    spreader = TransactionSpreader(lambda: _peers(node), max_in_flight=0)
    before = _outcomes()
    spreader.spread(RAW_TX, taken_by="http://node-1")
    await spreader.settled()
    assert node.received == []
    assert _outcomes() == before
