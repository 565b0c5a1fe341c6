"""Read your writes: which block a read needs its node to have.

The provider remembers, in a bounded map, the block of every transaction and block hash it
has seen mined (the receipts of its own writes, and every receipt, transaction and block a
node answered it). A read that names one of them, or a block number the platform has seen,
or that carries the client's lowest block (`TaskMessage.min_block`), needs a node whose head
has reached that block: the dispatcher routes it to one, or waits for one (provider/dispatcher.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ethgw_wire.operations import (
    BlockHashParams,
    BlockNumberParams,
    Params,
    RpcCallParams,
    TxHashParams,
)
from ethgw_wire.rpc_params import block_number_of, block_param_index

_TX_METHODS = frozenset({"eth_getTransactionByHash", "eth_getTransactionReceipt"})
_BLOCK_HASH_METHODS = frozenset({"eth_getBlockByHash", "eth_getBlockTransactionCountByHash"})


class SeenMined:
    """Transaction hashes and block hashes seen mined, with their block number; the least
    recently seen are forgotten past `capacity` of each."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._transactions: OrderedDict[str, int] = OrderedDict()
        self._blocks: OrderedDict[str, int] = OrderedDict()

    def transaction(self, tx_hash: str) -> int | None:
        return self._transactions.get(tx_hash.lower())

    def block(self, block_hash: str) -> int | None:
        return self._blocks.get(block_hash.lower())

    def saw_transaction(self, tx_hash: str, block_hash: str | None, number: int) -> None:
        self._remember(self._transactions, tx_hash, number)
        if block_hash is not None:
            self._remember(self._blocks, block_hash, number)

    def saw_block(self, block_hash: str, number: int) -> None:
        self._remember(self._blocks, block_hash, number)

    def saw_answer(self, method: str, answer: Any) -> int | None:
        """Note what a node's answer shows mined; the block it shows, if any."""
        if not isinstance(answer, Mapping):
            return None
        number = _quantity(answer.get("blockNumber" if method in _TX_METHODS else "number"))
        if number is None:
            return None
        if method in _TX_METHODS:
            tx_hash = answer.get("transactionHash" if "Receipt" in method else "hash")
            if isinstance(tx_hash, str):
                block_hash = answer.get("blockHash")
                self.saw_transaction(
                    tx_hash, block_hash if isinstance(block_hash, str) else None, number
                )
        elif isinstance(answer.get("hash"), str):
            self.saw_block(str(answer["hash"]), number)
        return number

    def _remember(self, table: OrderedDict[str, int], key: str, number: int) -> None:
        key = key.lower()
        table[key] = number
        table.move_to_end(key)
        while len(table) > self._capacity:
            table.popitem(last=False)


def required_block(
    params: Params, seen: SeenMined, highest_head: int | None, client_min: int | None = None
) -> int | None:
    """The lowest head a node must have to answer the read: the block of what it names that
    the platform has seen mined, or the client's own lowest block; None when any node will do.

    A block number counts only up to the highest head known: a block nobody has reached is
    answered "not found" at once rather than waited for."""
    named = _named_block(params, seen)
    if named is not None and highest_head is not None and named > highest_head:
        named = None
    needs = [block for block in (named, client_min) if block is not None]
    return max(needs, default=None)


def _named_block(params: Params, seen: SeenMined) -> int | None:
    if isinstance(params, TxHashParams):
        return seen.transaction(params.tx_hash)
    if isinstance(params, BlockHashParams):
        return seen.block(params.block_hash)
    if isinstance(params, BlockNumberParams):
        return params.block_number
    if isinstance(params, RpcCallParams):
        return _named_by_call(params.method, params.params, seen)
    return None


def _named_by_call(method: str, params: list[Any], seen: SeenMined) -> int | None:
    first = params[0] if params else None
    if method in _TX_METHODS and isinstance(first, str):
        return seen.transaction(first)
    if method in _BLOCK_HASH_METHODS and isinstance(first, str):
        return seen.block(first)
    index = block_param_index(method)
    if index is None or index >= len(params):
        return None
    at = params[index]
    if isinstance(at, str) and block_number_of(at) is None and at.startswith("0x"):
        return seen.block(at)  # a block hash (EIP-1898)
    return block_number_of(at)


def _quantity(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None
