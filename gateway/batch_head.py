"""One head per JSON-RPC batch: every call of a batch that reads "latest" reads one block.

The calls of a batch run as separate tasks, possibly on different nodes a block apart. When
two or more of them read "latest" (by name, or by leaving their block out), the gateway asks
the head once and pins them to it: their "latest" becomes that block number, an
eth_blockNumber is answered with it, and each is forwarded with X-Ethgw-Min-Block, so the
provider runs it on a node that has that block (docs/gateway.md, "One head per batch").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from ethgw_wire.rpc_params import pin_latest, reads_latest
from gateway.jsonrpc import PinnedItem, RpcAnswer, RpcCall, RpcItem


def reads_of_latest(items: list[RpcItem]) -> int:
    """How many of the batch's read calls read "latest"."""
    return sum(
        1
        for item in items
        if isinstance(item, RpcCall)
        and item.kind == "read"
        and reads_latest(item.method, item.params)
    )


async def pin_head(
    items: list[RpcItem], ask_head: Callable[[], Awaitable[int | None]]
) -> tuple[list[PinnedItem], int | None]:
    """The batch's items with "latest" pinned to one head, and that head; the items as they
    are (and None) when fewer than two read "latest" or the head could not be had."""
    if reads_of_latest(items) < 2:
        return list(items), None
    head = await ask_head()
    if head is None:
        return list(items), None
    return [_pinned(item, head) for item in items], head


def _pinned(item: RpcItem, head: int) -> PinnedItem:
    if not isinstance(item, RpcCall) or item.kind != "read":
        return item
    if item.method == "eth_blockNumber":
        response = {"jsonrpc": "2.0", "id": item.id, "result": hex(head)}
        return RpcAnswer(response, item.notification)
    return replace(item, params=pin_latest(item.method, item.params, head))
