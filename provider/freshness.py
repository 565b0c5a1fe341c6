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

    A block named by its number counts only up to the highest head known: a block nobody has
    reached is answered "not found" at once rather than waited for."""
    named = _seen_block(params, seen)
    number = _block_number(params)
    if number is not None and highest_head is not None and number <= highest_head:
        named = number if named is None else max(named, number)
    needs = [block for block in (named, client_min) if block is not None]
    return max(needs, default=None)


def _seen_block(params: Params, seen: SeenMined) -> int | None:
    """The block of the transaction or block hash the read names, if seen mined."""
    if isinstance(params, TxHashParams):
        return seen.transaction(params.tx_hash)
    if isinstance(params, BlockHashParams):
        return seen.block(params.block_hash)
    if not isinstance(params, RpcCallParams):
        return None
    first = params.params[0] if params.params else None
    if params.method in _TX_METHODS and isinstance(first, str):
        return seen.transaction(first)
    if params.method in _BLOCK_HASH_METHODS and isinstance(first, str):
        return seen.block(first)
    at = _block_param(params)
    if isinstance(at, str) and at.startswith("0x") and block_number_of(at) is None:
        return seen.block(at)  # a block hash (EIP-1898)
    return None


def _block_number(params: Params) -> int | None:
    """The block number the read names, if any."""
    if isinstance(params, BlockNumberParams):
        return params.block_number
    if isinstance(params, RpcCallParams):
        return block_number_of(_block_param(params))
    return None


def _block_param(params: RpcCallParams) -> Any:
    index = block_param_index(params.method)
    if index is None or index >= len(params.params):
        return None
    return params.params[index]


def _quantity(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None
