"""One head per JSON-RPC batch: the rule, with the head asked of a fake."""

from __future__ import annotations

from typing import Any

from gateway.batch_head import pin_head
from gateway.jsonrpc import RpcAnswer, RpcCall, RpcFailure, RpcItem

ADDRESS = "0x" + "11" * 20


def _read(method: str, params: list[Any], call_id: int = 1) -> RpcCall:
    return RpcCall(id=call_id, method=method, params=params, kind="read", notification=False)


class Head:
    def __init__(self, head: int | None) -> None:
        self.head = head
        self.asked = 0

    async def __call__(self) -> int | None:
        self.asked += 1
        return self.head


async def test_a_batch_of_latest_reads_is_pinned_to_one_head() -> None:
    """eth_blockNumber answers the head, and every "latest" (named or left out) names it."""
    items: list[RpcItem] = [
        _read("eth_blockNumber", [], 1),
        _read("eth_getBalance", [ADDRESS, "latest"], 2),
        _read("eth_getBlockByNumber", ["latest", False], 3),
        _read("eth_call", [{"to": ADDRESS}], 4),
        _read("eth_getLogs", [{"address": ADDRESS}], 5),
    ]
    pinned, head = await pin_head(items, Head(0x2A))
    assert head == 0x2A
    assert pinned[0] == RpcAnswer({"jsonrpc": "2.0", "id": 1, "result": "0x2a"})
    assert [item.params for item in pinned[1:] if isinstance(item, RpcCall)] == [
        [ADDRESS, "0x2a"],
        ["0x2a", False],
        [{"to": ADDRESS}, "0x2a"],
        [{"address": ADDRESS, "fromBlock": "0x2a", "toBlock": "0x2a"}],
    ]


async def test_a_batch_with_one_latest_read_is_left_alone() -> None:
    """One "latest" read cannot disagree with itself: no head is asked."""
    items: list[RpcItem] = [
        _read("eth_blockNumber", [], 1),
        _read("eth_getBalance", [ADDRESS, "0x5"], 2),
        _read("eth_chainId", [], 3),
    ]
    ask = Head(9)
    assert await pin_head(items, ask) == (items, None)
    assert ask.asked == 0


async def test_named_blocks_tags_and_refusals_are_kept() -> None:
    """A block number, "pending" and a refused item are not touched by the pinning."""
    refused = RpcFailure({"jsonrpc": "2.0", "id": 9, "error": {"code": -32601}})
    items: list[RpcItem] = [
        _read("eth_blockNumber", [], 1),
        _read("eth_getBalance", [ADDRESS, "latest"], 2),
        _read("eth_getBalance", [ADDRESS, "0x5"], 3),
        _read("eth_getBalance", [ADDRESS, "pending"], 4),
        refused,
    ]
    pinned, _ = await pin_head(items, Head(7))
    assert pinned[2:] == items[2:]


async def test_no_head_leaves_the_batch_as_it_is() -> None:
    """When the head cannot be had, the calls run unpinned rather than fail."""
    items: list[RpcItem] = [_read("eth_blockNumber", []), _read("eth_gasPrice", [])]
    items.append(_read("eth_getBalance", [ADDRESS, "latest"]))
    assert await pin_head(items, Head(None)) == (items, None)
