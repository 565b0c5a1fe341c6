"""Node answers that cannot change, kept in a bounded cache; identical reads in flight, made once.

A cache answers only what cannot change: the chain id; a block, or its transaction count,
by hash; a block, or its transaction count, by number once it is `safe_depth` blocks under
the highest head known; a transaction and a receipt once mined that deep; contract code at
a block named by a number that deep or by its hash. "latest", "pending" and every answer
"not found" (null) are never kept. Clique with one sealer does not reorganise, so the
depth is a margin, not a finality rule (docs/pipeline.md).

Identical reads running at once share one node call: on one node for the head-dependent
ones (eth_blockNumber, eth_gasPrice), on any node for the cacheable ones.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ethgw_wire.artifacts import ContractArtifact
from ethgw_wire.rpc_params import block_number_of
from provider import metrics
from provider.chain import NodeClient
from provider.freshness import SeenMined
from provider.receipts import ReceiptWatcher

# The cache each cacheable method's answers go to (the metrics' `cache` label).
CACHES: dict[str, str] = {
    "eth_chainId": "chain_id",
    "eth_getBlockByHash": "block",
    "eth_getBlockByNumber": "block",
    "eth_getBlockTransactionCountByHash": "block",
    "eth_getBlockTransactionCountByNumber": "block",
    "eth_getTransactionByHash": "transaction",
    "eth_getTransactionReceipt": "receipt",
    "eth_getCode": "code",
}
# Reads of the node's head that many tasks ask at once: made once per node while in flight.
COALESCED = frozenset({"eth_blockNumber", "eth_chainId", "eth_gasPrice"})
INFLIGHT = "inflight"  # the `cache` label of reads that joined one in flight


class ReadCache:
    """The bounded cache of immutable answers (least recently used go first) and the reads
    in flight."""

    def __init__(self, capacity: int, safe_depth: int) -> None:
        self._capacity = capacity
        self._safe_depth = safe_depth
        self._answers: OrderedDict[str, Any] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._answers)

    async def read(
        self,
        node: str,
        method: str,
        params: Sequence[Any],
        fetch: Callable[[], Awaitable[Any]],
        highest_head: int | None,
    ) -> Any:
        """The answer of `method(params)` on `node`: from the cache, from the same read in
        flight, or from `fetch()` (kept when it cannot change)."""
        cache = CACHES.get(method)
        key = _key(method, params)
        if cache is not None:
            if key in self._answers:
                self._answers.move_to_end(key)
                metrics.CACHE_REQUESTS.labels(cache, "hit").inc()
                return self._answers[key]
            metrics.CACHE_REQUESTS.labels(cache, "miss").inc()
        elif method not in COALESCED:
            return await fetch()
        # A cacheable answer is the same on every node; a head-dependent one is not.
        flight = key if cache is not None else f"{node} {key}"
        answer = await self._once(flight, fetch)
        if cache is not None and self._immutable(method, params, answer, highest_head):
            self._keep(key, answer)
        return answer

    async def _once(self, flight: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        running = self._inflight.get(flight)
        if running is not None:
            metrics.CACHE_REQUESTS.labels(INFLIGHT, "hit").inc()
            return await asyncio.shield(running)
        metrics.CACHE_REQUESTS.labels(INFLIGHT, "miss").inc()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            answer = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody joined
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            del self._inflight[flight]

    def _keep(self, key: str, answer: Any) -> None:
        if self._capacity == 0:
            return
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        metrics.CACHE_ENTRIES.set(len(self._answers))

    def _immutable(
        self, method: str, params: Sequence[Any], answer: Any, highest_head: int | None
    ) -> bool:
        """Whether the answer can never change (so may be kept)."""
        if answer is None:
            return False  # not found (yet)
        if method in ("eth_chainId", "eth_getBlockByHash", "eth_getBlockTransactionCountByHash"):
            return True
        if method in ("eth_getBlockByNumber", "eth_getBlockTransactionCountByNumber"):
            return self._deep(block_number_of(params[0]) if params else None, highest_head)
        if method in ("eth_getTransactionByHash", "eth_getTransactionReceipt"):
            mined = answer.get("blockNumber") if isinstance(answer, dict) else None
            return self._deep(block_number_of(mined), highest_head)
        if method == "eth_getCode":
            at = params[1] if len(params) > 1 else None
            by_hash = isinstance(at, str) and len(at) == 66
            return by_hash or self._deep(block_number_of(at), highest_head)
        return False

    def _deep(self, number: int | None, highest_head: int | None) -> bool:
        """A block at least safe_depth blocks under the highest head known."""
        if number is None or highest_head is None:
            return False
        return number <= highest_head - self._safe_depth


def _key(method: str, params: Sequence[Any]) -> str:
    # Hex is case-insensitive: 0xAB and 0xab name the same block or transaction.
    return json.dumps([method, list(params)], sort_keys=True, separators=(",", ":")).lower()


class HeadObserver(Protocol):
    """Where a node's head seen in its own answers goes (the provider's NodeView)."""

    def observe(self, url: str, block: int) -> None:
        """The node at `url` has at least `block`."""
        ...

    def highest_head(self) -> int | None:
        """The highest head any node is known to have, None when none is known."""
        ...


class CachingNodeClient(NodeClient):
    """A node client whose raw reads go through the read cache, and whose answers tell the
    provider what the node has: its head, the transactions and blocks it has mined."""

    def __init__(
        self,
        inner: NodeClient,
        url: str,
        cache: ReadCache,
        seen: SeenMined,
        heads: HeadObserver,
    ) -> None:
        self._inner = inner
        self.url = url
        self._cache = cache
        self._seen = seen
        self._heads = heads
        # Through this client: its head reads are coalesced and tell the provider the head.
        self._receipts = ReceiptWatcher(self)

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        async def fetch() -> Any:
            answer = await self._inner.request(method, params)
            self._observe(method, answer)
            return answer

        return await self._cache.read(self.url, method, params, fetch, self._heads.highest_head())

    def _observe(self, method: str, answer: Any) -> None:
        """What this node's own answer shows it has (never a cached one: another node's)."""
        if method == "eth_blockNumber" and isinstance(answer, str):
            self._heads.observe(self.url, int(answer, 16))
            return
        if method in CACHES:
            number = self._seen.saw_answer(method, answer)
            if number is not None:
                self._heads.observe(self.url, number)

    async def close(self) -> None:
        """Stop the receipt watcher's loop."""
        await self._receipts.close()

    async def receipt(self, tx_hash: str, timeout_s: float) -> dict[str, Any]:
        """Found by the node's receipt watcher, one scan of each new block for all waiters."""
        receipt = await self._receipts.wait(tx_hash, timeout_s)
        self._observe("eth_getTransactionReceipt", receipt)
        return receipt

    async def estimate_gas(
        self, tx: dict[str, Any], abi: Sequence[dict[str, Any]] | None = None
    ) -> int:
        return await self._inner.estimate_gas(tx, abi)

    async def call_function(
        self,
        contract: ContractArtifact,
        address: str,
        function: str,
        args: Sequence[Any],
        block: int | None = None,
    ) -> Any:
        return await self._inner.call_function(contract, address, function, args, block)

    async def call_functions(
        self,
        contract: ContractArtifact,
        address: str,
        calls: Sequence[tuple[str, Sequence[Any]]],
        block: int | None = None,
    ) -> list[Any]:
        return await self._inner.call_functions(contract, address, calls, block)

    async def event_args(
        self, contract: ContractArtifact, address: str, tx_hash: str, event: str
    ) -> list[dict[str, Any]]:
        return await self._inner.event_args(contract, address, tx_hash, event)


class CachingClients:
    """The caching node client of each RPC URL, over the plain one, made on first use."""

    def __init__(
        self,
        plain: Callable[[str], NodeClient],
        cache: ReadCache,
        seen: SeenMined,
        heads: HeadObserver,
    ) -> None:
        self._plain = plain
        self._cache = cache
        self._seen = seen
        self._heads = heads
        self._clients: dict[str, CachingNodeClient] = {}

    def get(self, url: str) -> CachingNodeClient:
        client = self._clients.get(url)
        if client is None:
            client = CachingNodeClient(self._plain(url), url, self._cache, self._seen, self._heads)
            self._clients[url] = client
        return client

    async def close(self) -> None:
        """Stop every client's receipt watcher (before the plain clients' session closes)."""
        for client in self._clients.values():
            await client.close()
