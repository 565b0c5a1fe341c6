"""Read your writes, the rule: which block a read needs its node to have."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ethgw_wire.operations import (
    AddressParams,
    BlockHashParams,
    BlockNumberParams,
    RpcCallParams,
    TxHashParams,
)
from provider.freshness import SeenMined, required_block

TX = "0x" + "ab" * 32
BLOCK_HASH = "0x" + "cd" * 32
blocks = st.integers(min_value=0, max_value=10**9)


def _seen(tx_block: int) -> SeenMined:
    seen = SeenMined(100)
    seen.saw_transaction(TX, BLOCK_HASH, tx_block)
    return seen


@given(blocks, blocks)
def test_a_transaction_seen_mined_needs_its_block(mined: int, head: int) -> None:
    """A receipt or transaction read of a hash seen mined at B needs a node at B or above,
    whatever head the reports know (the platform saw it mined: it exists)."""
    seen = _seen(mined)
    for params in (
        TxHashParams(tx_hash=TX),
        RpcCallParams(method="eth_getTransactionReceipt", params=[TX]),
        RpcCallParams(method="eth_getTransactionByHash", params=[TX.upper().replace("0X", "0x")]),
    ):
        assert required_block(params, seen, head) == mined


def test_a_transaction_never_seen_needs_nothing() -> None:
    """A hash the platform has not seen mined runs anywhere (and may be not found)."""
    assert required_block(TxHashParams(tx_hash=TX), SeenMined(10), 50) is None


@given(blocks, blocks)
def test_a_block_number_needs_that_block_only_up_to_the_known_head(number: int, head: int) -> None:
    """A block the platform has seen is waited for; one past every head is not found at once."""
    need = required_block(BlockNumberParams(block_number=number), SeenMined(1), head)
    assert need == (number if number <= head else None)


def test_a_block_hash_seen_needs_its_block() -> None:
    """A block hash seen in a receipt needs that block, by REST or JSON-RPC."""
    seen = _seen(42)
    assert required_block(BlockHashParams(block_hash=BLOCK_HASH), seen, 50) == 42
    call = RpcCallParams(method="eth_getBlockByHash", params=[BLOCK_HASH, False])
    assert required_block(call, seen, 50) == 42


def test_a_call_at_a_block_number_needs_it() -> None:
    """eth_getBalance at 0x2a needs block 42; at "latest" it needs none."""
    at = RpcCallParams(method="eth_getBalance", params=["0x" + "11" * 20, "0x2a"])
    latest = RpcCallParams(method="eth_getBalance", params=["0x" + "11" * 20, "latest"])
    assert required_block(at, SeenMined(1), 50) == 42
    assert required_block(latest, SeenMined(1), 50) is None


@given(st.one_of(st.none(), blocks), st.one_of(st.none(), blocks), st.one_of(st.none(), blocks))
def test_the_client_block_and_the_named_block_the_higher_wins(
    mined: int | None, client_min: int | None, head: int | None
) -> None:
    """The block needed is the higher of the client's (X-Ethgw-Min-Block) and the block of the
    transaction seen mined, whatever the known head."""
    seen = SeenMined(10) if mined is None else _seen(mined)
    need = required_block(TxHashParams(tx_hash=TX), seen, head, client_min)
    expected = [b for b in (mined, client_min) if b is not None]
    assert need == (max(expected) if expected else None)


def test_a_read_naming_nothing_needs_nothing() -> None:
    """A balance at "latest" runs wherever the scheduler puts it."""
    assert required_block(AddressParams(address="0x" + "11" * 20), _seen(5), 10) is None


@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), blocks), max_size=50))
def test_the_seen_map_is_bounded_and_keeps_the_latest(entries: list[tuple[bytes, int]]) -> None:
    """Past its capacity the least recently seen go; the last seen is always known."""
    seen = SeenMined(8)
    for digest, number in entries:
        seen.saw_transaction("0x" + digest.hex(), None, number)
    assert len(seen._transactions) <= 8
    if entries:
        digest, number = entries[-1]
        assert seen.transaction("0x" + digest.hex()) == number


def test_answers_teach_blocks() -> None:
    """Receipts, transactions and blocks a node answered record their block."""
    seen = SeenMined(10)
    receipt = {"transactionHash": TX, "blockHash": BLOCK_HASH, "blockNumber": "0x7"}
    assert seen.saw_answer("eth_getTransactionReceipt", receipt) == 7
    assert seen.transaction(TX) == 7
    assert seen.block(BLOCK_HASH) == 7
    block = {"hash": "0x" + "ef" * 32, "number": "0x9"}
    assert seen.saw_answer("eth_getBlockByNumber", block) == 9
    assert seen.block("0x" + "ef" * 32) == 9
    assert seen.saw_answer("eth_getTransactionByHash", {"hash": TX, "blockNumber": None}) is None
