"""The local private network: one chain, restarts, resource sampling."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from eth_account import Account

from devstack.sandbox import kill_node
from geth_cluster.cluster import GethCluster
from geth_cluster.node_rpc import block_number, peer_count, rpc_call, settled_chain_position
from geth_cluster.runtimes.local import LOG_NAME

pytestmark = pytest.mark.slow

GWEI = 10**9
# Init code that counts down from 65535 and stops: ~1.7M gas of real EVM work per
# eth_call, so the load is the node's and not the test client's.
EVM_BUSY_LOOP = "0x61ffff5b600190038060035700"


async def _wait_for(predicate: Any, timeout_s: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"condition not met in {timeout_s}s")


async def _send_from_faucet(cluster: GethCluster, url: str, to: str, value: int) -> str:
    async with httpx.AsyncClient() as client:
        faucet = cluster.accounts.faucet.address
        nonce = int(await rpc_call(client, url, "eth_getTransactionCount", [faucet, "pending"]), 16)
        signed = Account.sign_transaction(
            {
                "to": to,
                "value": value,
                "gas": 21000,
                "gasPrice": 2 * GWEI,
                "nonce": nonce,
                "chainId": cluster.settings.chain_id,
            },
            cluster.accounts.faucet.private_key(),
        )
        raw = signed.raw_transaction.to_0x_hex()
        return str(await rpc_call(client, url, "eth_sendRawTransaction", [raw]))


async def test_transaction_sent_to_one_node_is_mined_and_read_from_another(
    geth_cluster: GethCluster,
) -> None:
    """A transaction sent to node-1 is mined and node-2 sees it: one chain, not two."""
    node1, node2 = geth_cluster.spec("node-1"), geth_cluster.spec("node-2")
    recipient = Account.create().address
    tx_hash = await _send_from_faucet(geth_cluster, node1.rpc_url, recipient, 12345)
    async with httpx.AsyncClient() as client:

        async def receipt_on_node2() -> Any:
            return await rpc_call(client, node2.rpc_url, "eth_getTransactionReceipt", [tx_hash])

        receipt = await _wait_for(receipt_on_node2)
        # At the receipt's block, not "latest": geth indexes a block's transactions just
        # before it moves its head there, so "latest" can still be the block before.
        balance = await rpc_call(
            client, node2.rpc_url, "eth_getBalance", [recipient, receipt["blockNumber"]]
        )
    assert receipt["status"] == "0x1"
    assert int(balance, 16) == 12345


async def test_stopped_node_rejoins_and_catches_up(geth_cluster: GethCluster) -> None:
    """A node stopped while blocks are sealed comes back and reaches the head again."""
    node2 = geth_cluster.spec("node-2")
    sealer = geth_cluster.spec("sealer")
    await geth_cluster.stop_node("node-2")
    async with httpx.AsyncClient() as client:
        head_at_stop = await block_number(client, sealer.rpc_url)

        async def sealer_moved_on() -> bool:
            return await block_number(client, sealer.rpc_url) >= head_at_stop + 4

        await _wait_for(sealer_moved_on)
        await geth_cluster.start_node("node-2")
        rejoined_at = await block_number(client, node2.rpc_url)
    assert rejoined_at >= head_at_stop + 4 - geth_cluster.settings.max_lag


async def test_restart_node_returns_when_the_node_is_back_at_the_head(
    geth_cluster: GethCluster,
) -> None:
    """restart_node gives back a node that answers, has peers and is near the head."""
    old_pid = geth_cluster.runtime.pid(geth_cluster.spec("node-1"))
    await geth_cluster.restart_node("node-1")
    heads = await geth_cluster.heads()
    row = {r.name: r for r in await geth_cluster.status()}["node-1"]
    assert row.pid is not None
    assert row.pid != old_pid
    assert (row.peers or 0) > 0
    assert heads["node-1"] is not None
    assert heads["node-1"] >= max(h or 0 for h in heads.values()) - geth_cluster.settings.max_lag


async def test_following_node_builds_its_pending_block_past_its_head(
    geth_cluster: GethCluster,
) -> None:
    """A node that follows the chain reports a pending block above its head: not stale."""
    url = geth_cluster.spec("node-1").rpc_url
    async with httpx.AsyncClient() as client:
        # Following means importing sealed blocks; node-1 may have just caught up by a sync
        # (an earlier test restarts it), which leaves pending on its old head for a block.
        first = await block_number(client, url)

        async def two_blocks_imported() -> bool:
            return await block_number(client, url) >= first + 2

        await _wait_for(two_blocks_imported)
        position = await settled_chain_position(client, url, timeout_s=1.0)
    assert position.pending is not None
    assert position.pending > position.head > 0
    assert not position.pending_is_stale


async def test_every_node_is_peered_with_every_other(geth_cluster: GethCluster) -> None:
    """Each service node counts all the other nodes as peers: the slots hold the full mesh."""
    others = len(geth_cluster.specs) - 1
    async with httpx.AsyncClient() as client:

        async def meshed() -> bool:
            counts = [await peer_count(client, s.rpc_url) for s in geth_cluster.specs[1:]]
            return all(count == others for count in counts)

        await _wait_for(meshed)


DISCARDED = "Syncing, discarded propagated block"
SYNC_STARTED = "Block synchronisation started"
NODE_STARTING = "Starting peer-to-peer node"


def _geth_log(cluster: GethCluster, name: str) -> str:
    return (cluster.spec(name).datadir / LOG_NAME).read_text(errors="replace")


async def test_fresh_service_nodes_discard_no_block_before_their_first_sync(
    geth_cluster: GethCluster,
) -> None:
    """up() starts the service nodes once the sealer is past genesis, so each syncs once it
    has met its peers instead of discarding the blocks propagated to it meanwhile."""
    for spec in geth_cluster.specs[1:]:
        first_start = _geth_log(geth_cluster, spec.name).split(SYNC_STARTED)[0]
        assert DISCARDED not in first_start, spec.name


async def _wait_first_sync_since_start(cluster: GethCluster, name: str) -> str:
    """The node's log since its last start, once it shows a sync."""

    def since_start() -> str:
        return _geth_log(cluster, name).split(NODE_STARTING)[-1]

    async def synced() -> bool:
        return SYNC_STARTED in since_start()

    await _wait_for(synced)
    return since_start()


async def test_a_restarted_node_discards_no_block_before_its_first_sync(
    geth_cluster: GethCluster,
) -> None:
    """restart_node starts the node once the sealer has sealed past it, so it syncs once it
    has met its peers instead of discarding blocks until geth's 10 s forced-sync cycle."""
    await geth_cluster.restart_node("node-2")
    since_start = await _wait_first_sync_since_start(geth_cluster, "node-2")
    assert DISCARDED not in since_start.split(SYNC_STARTED)[0]


async def test_a_crashed_node_started_again_discards_no_block_before_its_first_sync(
    geth_cluster: GethCluster,
) -> None:
    """start_node of a killed node (the healer's path) also waits for the sealer to pass it."""
    spec = geth_cluster.spec("node-2")
    kill_node(geth_cluster, "node-2")

    async def dead() -> bool:
        return not await geth_cluster.runtime.is_running(spec)

    await _wait_for(dead)
    await geth_cluster.start_node("node-2")
    since_start = await _wait_first_sync_since_start(geth_cluster, "node-2")
    assert DISCARDED not in since_start.split(SYNC_STARTED)[0]


async def test_stats_ratios_are_within_unit_interval(geth_cluster: GethCluster) -> None:
    """Memory and CPU ratios of a running node are in [0, 1]."""
    spec = geth_cluster.spec("node-1")
    sampler = geth_cluster.runtime.sampler(spec, memory_budget_mb=1024, cpu_cores=1)
    await asyncio.sleep(0.5)
    sample = sampler.sample()
    assert 0.0 <= sample.memory <= 1.0
    assert 0.0 <= sample.cpu <= 1.0
    assert sample.memory_mb > 0


async def test_cpu_ratio_rises_when_the_node_works(geth_cluster: GethCluster) -> None:
    """CPU ratio under a burst of RPC work is higher than at rest."""
    spec = geth_cluster.spec("node-2")
    sampler = geth_cluster.runtime.sampler(spec, memory_budget_mb=1024, cpu_cores=1)
    sampler.sample()
    await asyncio.sleep(2.0)
    idle = sampler.sample().cpu

    async def hammer(client: httpx.AsyncClient, stop_at: float) -> None:
        while asyncio.get_running_loop().time() < stop_at:
            await rpc_call(client, spec.rpc_url, "eth_call", [{"data": EVM_BUSY_LOOP}, "latest"])

    stop_at = asyncio.get_running_loop().time() + 2.0
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(hammer(client, stop_at) for _ in range(4)))
    busy = sampler.sample().cpu
    assert busy > idle + 0.2, (idle, busy)


async def test_down_keeps_the_chain_for_the_next_start(geth_cluster: GethCluster) -> None:
    """After down and up the chain continues from where it stopped, not from genesis."""
    before = max(h or 0 for h in (await geth_cluster.heads()).values())
    await geth_cluster.down()
    assert all(h is None for h in (await geth_cluster.heads()).values())
    await geth_cluster.up()
    after = min(h or 0 for h in (await geth_cluster.heads()).values())
    assert after >= before - geth_cluster.settings.max_lag
