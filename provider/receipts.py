"""The receipts a provider waits for on one node, found block by block.

Polling every waiting transaction's receipt costs a node call per transaction per poll:
with a hundred writes waiting for their block, that was most of the provider's CPU and
many of the node's calls (docs/benchmarks.md). A watcher asks the node its head instead,
once per poll whatever the number of waiters, and reads each new block's receipts in one
call (`eth_getBlockReceipts`), handing each to the transaction that waits for it.

No receipt can slip between the two: a waiter is registered before its transaction is
looked up once by hash, and the scan goes on from a head read before that lookup (the
running scan's, or one read by the first waiter). A block the lookup missed is therefore
one the scan reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ethgw_wire.errors import NodeRefusedError, ReceiptTimeoutError
from provider.chain import IndexingError, NodeClient, NodeUnreachableError
from service_kit.logs import get_logger

log = get_logger("ethgw.provider")

POLL_S = 0.1
"""Between two asks of the node's head: a tenth of Clique's 1 s block period."""

MAX_BLOCKS_PER_SCAN = 16
"""A node further behind than this (catching up) has its waiters looked up by hash instead:
fewer calls than reading every block it went through."""


class ReceiptWatcher:
    """Waiters for receipts on one node, and the one loop that finds them while any wait."""

    def __init__(self, node: NodeClient, poll_s: float = POLL_S) -> None:
        self._node = node
        self._poll_s = poll_s
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._scanned: int | None = None  # the last block whose receipts were handed out
        self._loop: asyncio.Task[None] | None = None
        self._by_block = True  # until the node turns eth_getBlockReceipts down

    @property
    def waiting(self) -> int:
        """Transactions waiting for their receipt on this node."""
        return len(self._waiters)

    async def wait(self, tx_hash: str, timeout_s: float) -> dict[str, Any]:
        """The receipt of `tx_hash` once the node has it; ReceiptTimeoutError after
        `timeout_s`, NodeUnreachableError when the node stops answering."""
        key = tx_hash.lower()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            if self._scanned is None:  # no scan under way: it starts at the head read now
                self._scanned = await self._head()
            found = await self._lookup(key)
            if found is not None:
                return found
            self._ensure_loop()
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ReceiptTimeoutError(f"no receipt for {tx_hash} after {timeout_s:.0f}s") from None
        finally:
            self._forget(key, future)
            if not self._waiters and (self._loop is None or self._loop.done()):
                self._scanned = None  # nobody scans on from it: the next wait reads the head

    async def close(self) -> None:
        """Stop the loop (the provider's shutdown)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    # -- the loop ----------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._poll_s)
            try:
                await self._step()
            except NodeUnreachableError as exc:
                self._fail_all(exc)  # each task moves on to another node, as a failed call does
            except Exception as exc:  # the waiters' own timeouts still bound their wait
                log.warning("receipt_scan_failed", error=repr(exc))
        self._scanned = None  # the next wait starts from the head it reads

    async def _step(self) -> None:
        head = await self._head()
        start = head if self._scanned is None else self._scanned + 1
        if start > head:
            return
        if self._by_block and head - start < MAX_BLOCKS_PER_SCAN:
            await self._scan(start, head)
            return
        for key in list(self._waiters):
            found = await self._lookup(key)
            if found is not None:
                self._resolve(found)
        self._scanned = head

    async def _scan(self, start: int, head: int) -> None:
        """Hand out the receipts of blocks `start` to `head`, up to the first one the node
        cannot list yet (the next poll goes on from there)."""
        for number in range(start, head + 1):
            try:
                receipts = await self._node.request("eth_getBlockReceipts", [hex(number)])
            except NodeRefusedError:
                self._by_block = False  # a node without the method: look waiters up by hash
                return
            if not isinstance(receipts, list):
                return
            for receipt in receipts:
                if isinstance(receipt, dict):
                    self._resolve(receipt)
            self._scanned = number

    # -- helpers ---------------------------------------------------------------------

    async def _head(self) -> int:
        return int(await self._node.request("eth_blockNumber", []), 16)

    async def _lookup(self, key: str) -> dict[str, Any] | None:
        try:
            receipt = await self._node.request("eth_getTransactionReceipt", [key])
        except IndexingError:
            return None
        return dict(receipt) if isinstance(receipt, dict) else None

    def _resolve(self, receipt: dict[str, Any]) -> None:
        key = str(receipt.get("transactionHash", "")).lower()
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(receipt)

    def _forget(self, key: str, future: asyncio.Future[dict[str, Any]]) -> None:
        futures = self._waiters.get(key)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[key]

    def _fail_all(self, exc: NodeUnreachableError) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in (f for futures in waiters.values() for f in futures):
            if not future.done():
                future.set_exception(exc)
