"""The receipt watcher: every waiting transaction gets its receipt, for one read of each new
block whatever the number of waiters, on a scripted chain and on a real Geth node."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ethgw_wire.errors import NodeRefusedError, ReceiptTimeoutError
from geth_cluster.cluster import GethCluster
from provider.chain import NodeUnreachableError, Web3NodeClient
from provider.receipts import MAX_BLOCKS_PER_SCAN, ReceiptWatcher
from tests.provider.fake_node import FakeNode

POLL_S = 0.01


def _hash(i: int) -> str:
    return "0x" + f"{i:064x}"


class ScriptedChain(FakeNode):
    """A node whose blocks the test mines; it counts the calls it answers."""

    def __init__(self, *, block_receipts: bool = True) -> None:
        super().__init__()
        self.blocks: list[list[str]] = [[]]  # block number -> the tx hashes mined in it
        self.calls: Counter[str] = Counter()
        self.block_receipts = block_receipts
        self.unreachable = False

    def mine(self, *tx_hashes: str) -> None:
        self.blocks.append(list(tx_hashes))

    def _receipt(self, tx_hash: str, number: int) -> dict[str, Any]:
        return {"transactionHash": tx_hash, "blockNumber": hex(number), "status": "0x1"}

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        self.calls[method] += 1
        if self.unreachable:
            raise NodeUnreachableError("ClientConnectorError", "refused")
        if method == "eth_blockNumber":
            return hex(len(self.blocks) - 1)
        if method == "eth_getTransactionReceipt":
            for number, hashes in enumerate(self.blocks):
                if params[0] in hashes:
                    return self._receipt(params[0], number)
            return None
        if method == "eth_getBlockReceipts" and self.block_receipts:
            number = int(params[0], 16)
            if number >= len(self.blocks):
                return None
            return [self._receipt(h, number) for h in self.blocks[number]]
        raise NodeRefusedError(f"{method}: the method does not exist")


async def _waiting(watcher: ReceiptWatcher, count: int) -> None:
    while watcher.waiting < count:  # noqa: ASYNC110 (the watcher has no event to wait on)
        await asyncio.sleep(POLL_S)


async def test_many_waiters_cost_one_block_read_per_block() -> None:
    """A hundred transactions waiting for two blocks cost two block reads, not a hundred polls."""
    chain = ScriptedChain()
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    hashes = [_hash(i) for i in range(100)]
    waits = [asyncio.create_task(watcher.wait(h, 5.0)) for h in hashes]
    await _waiting(watcher, 100)
    lookups = chain.calls["eth_getTransactionReceipt"]
    chain.mine(*hashes[:50])
    chain.mine(*hashes[50:])
    receipts = await asyncio.gather(*waits)
    assert [r["transactionHash"] for r in receipts] == hashes
    assert chain.calls["eth_getBlockReceipts"] == 2
    assert chain.calls["eth_getTransactionReceipt"] == lookups == 100  # one each, at the start


async def test_a_transaction_mined_before_its_wait_is_found_at_once() -> None:
    """A receipt already there is found by the first lookup, with no block read."""
    chain = ScriptedChain()
    chain.mine(_hash(1))
    receipt = await ReceiptWatcher(chain, poll_s=POLL_S).wait(_hash(1), 1.0)
    assert receipt["blockNumber"] == "0x1"
    assert chain.calls["eth_getBlockReceipts"] == 0


async def test_a_wait_found_at_once_leaves_no_old_head_to_scan_from() -> None:
    """A later wait scans from the head it reads, not from a head an earlier found wait read."""
    chain = ScriptedChain()
    chain.mine(_hash(1))
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    await watcher.wait(_hash(1), 1.0)
    for _ in range(5):
        chain.mine()
    wait = asyncio.create_task(watcher.wait(_hash(2), 2.0))
    await _waiting(watcher, 1)
    chain.mine(_hash(2))
    assert (await wait)["blockNumber"] == "0x7"
    assert chain.calls["eth_getBlockReceipts"] == 1


async def test_the_hash_is_matched_whatever_its_case() -> None:
    """A hash given in upper case finds the node's lower-case receipt."""
    chain = ScriptedChain()
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    wait = asyncio.create_task(watcher.wait("0x" + "AB" * 32, 2.0))
    await _waiting(watcher, 1)
    chain.mine("0x" + "ab" * 32)
    assert (await wait)["blockNumber"] == "0x1"


async def test_a_node_without_block_receipts_is_asked_by_hash() -> None:
    """A node that refuses eth_getBlockReceipts still gives every waiter its receipt."""
    chain = ScriptedChain(block_receipts=False)
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    wait = asyncio.create_task(watcher.wait(_hash(7), 2.0))
    await _waiting(watcher, 1)
    chain.mine(_hash(7))
    assert (await wait)["transactionHash"] == _hash(7)


async def test_a_node_far_behind_has_its_waiters_looked_up_by_hash() -> None:
    """A node that jumps more than MAX_BLOCKS_PER_SCAN blocks is not read block by block."""
    chain = ScriptedChain()
    watcher = ReceiptWatcher(chain, poll_s=0.2)
    wait = asyncio.create_task(watcher.wait(_hash(3), 5.0))
    await _waiting(watcher, 1)
    for _ in range(MAX_BLOCKS_PER_SCAN + 4):
        chain.mine()
    chain.mine(_hash(3))
    assert (await wait)["transactionHash"] == _hash(3)
    assert chain.calls["eth_getBlockReceipts"] == 0


async def test_a_wait_runs_out_with_a_receipt_timeout_and_is_forgotten() -> None:
    """No block with the transaction: ReceiptTimeoutError, and nobody waits any more."""
    watcher = ReceiptWatcher(ScriptedChain(), poll_s=POLL_S)
    with pytest.raises(ReceiptTimeoutError):
        await watcher.wait(_hash(9), 0.1)
    assert watcher.waiting == 0


async def test_an_unreachable_node_fails_every_wait_so_tasks_move_on() -> None:
    """A node that stops answering ends its waits with NodeUnreachableError, not a timeout."""
    chain = ScriptedChain()
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    waits = [asyncio.create_task(watcher.wait(_hash(i), 5.0)) for i in range(3)]
    await _waiting(watcher, 3)
    chain.unreachable = True
    for wait in waits:
        with pytest.raises(NodeUnreachableError):
            await wait
    assert watcher.waiting == 0


async def test_two_waits_for_one_transaction_both_get_it() -> None:
    """The same hash waited for twice (a task run again) resolves both waits."""
    chain = ScriptedChain()
    watcher = ReceiptWatcher(chain, poll_s=POLL_S)
    waits = [asyncio.create_task(watcher.wait(_hash(5), 2.0)) for _ in range(2)]
    await _waiting(watcher, 1)
    await asyncio.sleep(POLL_S * 3)
    chain.mine(_hash(5))
    assert [r["transactionHash"] for r in await asyncio.gather(*waits)] == [_hash(5)] * 2


# -- on a real node ---------------------------------------------------------------------


class CountingClient(Web3NodeClient):
    """A real node client that counts the calls made through it."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        super().__init__(url, session)
        self.calls: Counter[str] = Counter()

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        self.calls[method] += 1
        return await super().request(method, params)


@pytest_asyncio.fixture(loop_scope="session")
async def real_node(geth_cluster: GethCluster) -> AsyncIterator[CountingClient]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:
        yield CountingClient(geth_cluster.spec("node-1").rpc_url, session)


@pytest.mark.asyncio(loop_scope="session")
async def test_geth_hands_every_waiter_its_receipt_from_block_reads(
    geth_cluster: GethCluster, real_node: CountingClient
) -> None:
    """Thirty transfers sent at once to Geth 1.13 all get their receipt from block reads."""
    faucet: LocalAccount = Account.from_key(geth_cluster.accounts.faucet.private_key())
    start = await real_node.request("eth_getTransactionCount", [faucet.address, "pending"])
    hashes = []
    for i in range(30):
        tx = {"to": Account.create().address, "value": 1, "gas": 21000, "gasPrice": 2 * 10**9}
        tx |= {"nonce": int(start, 16) + i, "chainId": geth_cluster.settings.chain_id}
        signed = faucet.sign_transaction(tx)
        await real_node.request("eth_sendRawTransaction", [signed.raw_transaction.to_0x_hex()])
        hashes.append(signed.hash.to_0x_hex())
    watcher = ReceiptWatcher(real_node)
    receipts = await asyncio.gather(*(watcher.wait(h, 30.0) for h in hashes))
    assert [r["transactionHash"] for r in receipts] == hashes
    assert all(r["status"] == "0x1" for r in receipts)
    assert real_node.calls["eth_getTransactionReceipt"] == 30  # the one lookup each
    assert 1 <= real_node.calls["eth_getBlockReceipts"] <= 6  # Clique seals every second
