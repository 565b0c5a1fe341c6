"""The read cache keeps only answers that cannot change, stays bounded, and makes identical
reads in flight once. Its node is a fake: what is tested is the cache above it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from ethgw_wire.provider_metrics import cache_requests
from provider.freshness import SeenMined
from provider.read_cache import CachingNodeClient, ReadCache
from tests.provider.fake_node import FakeNode

HEAD = 100
DEPTH = 6
SAFE = HEAD - DEPTH  # the highest block at the safe depth
TX = "0x" + "ab" * 32
BLOCK_HASH = "0x" + "cd" * 32


class CountingNode(FakeNode):
    """Answers a chain at HEAD; counts every call that reached it; `gate` holds calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.mined_at: int | None = SAFE

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        self.calls.append(method)
        await self.gate.wait()
        if method == "eth_blockNumber":
            return hex(HEAD)
        if method == "eth_getBlockByNumber":
            number = int(params[0], 16) if params[0] != "latest" else HEAD
            return None if number > HEAD else _block(number)
        if method == "eth_getBlockByHash":
            return _block(SAFE)
        if method in ("eth_getTransactionReceipt", "eth_getTransactionByHash"):
            if self.mined_at is None:
                return None
            return {"transactionHash": TX, "hash": TX, "blockNumber": hex(self.mined_at)}
        if method == "eth_getCode":
            return "0x6000"
        return await super().request(method, params)


def _block(number: int) -> dict[str, Any]:
    return {"number": hex(number), "hash": BLOCK_HASH if number == SAFE else "0x" + "ee" * 32}


class Heads:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def observe(self, url: str, block: int) -> None:
        self.seen[url] = max(block, self.seen.get(url, 0))

    def highest_head(self) -> int | None:
        return HEAD


def _client(
    capacity: int = 100, node: CountingNode | None = None
) -> tuple[CachingNodeClient, CountingNode, SeenMined, Heads]:
    node = node or CountingNode()
    seen = SeenMined(100)
    heads = Heads()
    cache = ReadCache(capacity, DEPTH)
    return CachingNodeClient(node, "http://node-1", cache, seen, heads), node, seen, heads


async def _twice(client: CachingNodeClient, method: str, params: list[Any]) -> None:
    assert await client.request(method, params) == await client.request(method, params)


async def test_a_block_at_the_safe_depth_is_asked_of_the_node_once() -> None:
    """A block by number SAFE blocks under the head is answered from the cache the second time."""
    client, node, _, _ = _client()
    await _twice(client, "eth_getBlockByNumber", [hex(SAFE), False])
    assert node.calls == ["eth_getBlockByNumber"]


async def test_a_block_above_the_safe_depth_is_not_cached() -> None:
    """A block by number closer to the head than the safe depth could still change: asked again."""
    client, node, _, _ = _client()
    await _twice(client, "eth_getBlockByNumber", [hex(SAFE + 1), False])
    assert node.calls == ["eth_getBlockByNumber"] * 2


async def test_latest_is_never_cached() -> None:
    """ "latest" names no block: every read of it reaches the node."""
    client, node, _, _ = _client()
    await _twice(client, "eth_getBlockByNumber", ["latest", False])
    await _twice(client, "eth_getCode", ["0x" + "11" * 20, "latest"])
    assert len(node.calls) == 4


async def test_not_found_is_never_cached() -> None:
    """A receipt not found yet is asked again: it may be mined the next second."""
    node = CountingNode()
    node.mined_at = None
    client, node, _, _ = _client(node=node)
    await _twice(client, "eth_getTransactionReceipt", [TX])
    assert node.calls == ["eth_getTransactionReceipt"] * 2


async def test_a_receipt_is_cached_only_at_the_safe_depth() -> None:
    """A receipt mined at the head is asked again; one mined SAFE deep is kept."""
    node = CountingNode()
    node.mined_at = HEAD
    client, node, _, _ = _client(node=node)
    await _twice(client, "eth_getTransactionReceipt", [TX])
    assert len(node.calls) == 2
    node.mined_at = SAFE
    await _twice(client, "eth_getTransactionReceipt", [TX])
    assert len(node.calls) == 3


async def test_chain_id_and_blocks_by_hash_are_cached_at_once() -> None:
    """The chain id and a block named by its hash never change."""
    client, node, _, _ = _client()
    await _twice(client, "eth_chainId", [])
    await _twice(client, "eth_getBlockByHash", [BLOCK_HASH, False])
    assert node.calls == ["eth_chainId", "eth_getBlockByHash"]


async def test_hash_case_does_not_split_the_cache() -> None:
    """0xAB.. and 0xab.. name the same block: one node call."""
    client, node, _, _ = _client()
    await client.request("eth_getBlockByHash", [BLOCK_HASH.upper().replace("0X", "0x"), False])
    await client.request("eth_getBlockByHash", [BLOCK_HASH, False])
    assert node.calls == ["eth_getBlockByHash"]


@given(st.lists(st.integers(min_value=0, max_value=SAFE), min_size=1, max_size=60))
def test_the_cache_never_holds_more_than_its_capacity(blocks: list[int]) -> None:
    """Whatever is read, the cache keeps at most its capacity; the least recently used go."""

    async def read_all() -> ReadCache:
        cache = ReadCache(8, DEPTH)
        client = CachingNodeClient(CountingNode(), "http://n", cache, SeenMined(10), Heads())
        for number in blocks:
            await client.request("eth_getBlockByNumber", [hex(number), False])
            assert len(cache) <= 8
        return cache

    cache = asyncio.run(read_all())
    assert len(cache) == min(8, len(set(blocks)))


async def test_identical_reads_in_flight_are_made_once() -> None:
    """Ten eth_blockNumber asked at once while the node is slow: one node call, ten answers."""
    client, node, _, _ = _client()
    node.gate.clear()
    reads = [asyncio.create_task(client.request("eth_blockNumber", [])) for _ in range(10)]
    await asyncio.sleep(0.05)
    node.gate.set()
    assert await asyncio.gather(*reads) == [hex(HEAD)] * 10
    assert node.calls == ["eth_blockNumber"]


async def test_a_failed_read_in_flight_fails_every_joiner_and_is_not_kept() -> None:
    """A node error reaches every read that joined; the next read asks the node again."""

    class Failing(CountingNode):
        async def request(self, method: str, params: Sequence[Any]) -> Any:
            self.calls.append(method)
            await self.gate.wait()
            raise ConnectionError("down")

    client, node, _, _ = _client(node=Failing())
    node.gate.clear()
    reads = [asyncio.create_task(client.request("eth_chainId", [])) for _ in range(3)]
    await asyncio.sleep(0.05)
    node.gate.set()
    answers = await asyncio.gather(*reads, return_exceptions=True)
    assert all(isinstance(a, ConnectionError) for a in answers)
    node.gate.set()
    assert isinstance(
        (await asyncio.gather(client.request("eth_chainId", []), return_exceptions=True))[0],
        ConnectionError,
    )
    assert len(node.calls) == 2


async def test_a_receipt_read_teaches_the_block_and_the_node_head() -> None:
    """A receipt answered by a node records its transaction's block and that node's head."""
    node = CountingNode()
    node.mined_at = HEAD
    client, _, seen, heads = _client(node=node)
    await client.request("eth_getTransactionReceipt", [TX])
    assert seen.transaction(TX) == HEAD
    assert heads.seen == {"http://node-1": HEAD}


async def test_a_cached_answer_teaches_no_head() -> None:
    """An answer from the cache came from another node: it says nothing of this one's head."""
    cache = ReadCache(10, DEPTH)
    seen = SeenMined(10)
    first, second = Heads(), Heads()
    await CachingNodeClient(CountingNode(), "http://a", cache, seen, first).request(
        "eth_getBlockByHash", [BLOCK_HASH, False]
    )
    await CachingNodeClient(CountingNode(), "http://b", cache, seen, second).request(
        "eth_getBlockByHash", [BLOCK_HASH, False]
    )
    assert first.seen == {"http://a": SAFE}
    assert second.seen == {}


async def test_a_cache_of_size_zero_keeps_nothing() -> None:
    """ETHGW_READS_CACHE_ENTRIES=0 turns the cache off."""
    client, node, _, _ = _client(capacity=0)
    await _twice(client, "eth_chainId", [])
    assert node.calls == ["eth_chainId"] * 2


async def test_the_counts_are_what_the_gateway_reads() -> None:
    """The provider's cache counter, as its /metrics page shows it, is what the dashboard's
    parser (ethgw_wire.provider_metrics) reads: a hit and a miss more of the block cache."""
    before = cache_requests(generate_latest().decode())
    client, _, _, _ = _client()
    await _twice(client, "eth_getBlockByHash", [BLOCK_HASH, False])
    after = cache_requests(generate_latest().decode())
    for result in ("hit", "miss"):
        assert after[("block", result)] == before.get(("block", result), 0) + 1
