"""The Clique sealer read from a block, on real blocks of a real chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from geth_cluster.cluster import GethCluster
from provider.chain import NodeClient, NodeClients
from provider.clique import sealer_of

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture(loop_scope="session")
async def node(geth_cluster: GethCluster) -> AsyncIterator[NodeClient]:
    clients = NodeClients(10.0)
    try:
        yield clients.get(geth_cluster.spec("node-1").rpc_url)
    finally:
        await clients.close()


async def _block(node: NodeClient, which: str) -> dict[str, Any]:
    block: dict[str, Any] = await node.request("eth_getBlockByNumber", [which, False])
    return block


async def test_a_sealed_block_names_the_clique_signer(
    geth_cluster: GethCluster, node: NodeClient
) -> None:
    """The latest block, as a service node serves it, was sealed by the chain's sealer."""
    block = await _block(node, "latest")
    assert int(block["number"], 16) > 0
    assert sealer_of(block) == geth_cluster.accounts.sealer.address


async def test_the_genesis_block_names_its_first_signer(
    geth_cluster: GethCluster, node: NodeClient
) -> None:
    """Block 0 has no seal: its first listed signer is the sealer."""
    assert sealer_of(await _block(node, "0x0")) == geth_cluster.accounts.sealer.address


async def test_a_changed_header_no_longer_recovers_the_signer(
    geth_cluster: GethCluster, node: NodeClient
) -> None:
    """Every field is under the seal: one changed field recovers another address."""
    block = await _block(node, "latest")
    tampered = {**block, "gasUsed": hex(int(block["gasUsed"], 16) + 1)}
    assert sealer_of(tampered) != geth_cluster.accounts.sealer.address
