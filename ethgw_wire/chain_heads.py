"""The chain feed's records: each new block's header and logs, in order, on one topic.

One publisher (the cluster manager's chain feed, geth_cluster/chain_feed.py) writes one
`ChainHead` per block number, keyed by that number, on the single partition of
`KafkaSettings.topic_chain_heads`; every gateway reads it from its end and fans the blocks
out to WebSocket subscriptions. `HeadSequence` is the consumers' guard: a number at or
below the last one delivered is dropped, so a feed that restarts and publishes a block
again can never make a subscriber see it twice.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# What eth_getBlockByNumber answers that a newHeads notification does not carry (geth's
# newHeads sends the header alone).
NOT_IN_HEADER = frozenset({"transactions", "uncles", "withdrawals", "size", "totalDifficulty"})


class ChainHead(BaseModel):
    """One block as the feed publishes it: its header as the node answered it (0x-hex
    quantities, camelCase members: what eth_subscribe newHeads sends) and every log of
    the block (eth_getLogs by block hash)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1
    number: int = Field(ge=0)
    hash: str
    parent_hash: str
    header: dict[str, Any]
    logs: list[dict[str, Any]] = Field(default_factory=list)
    source: str  # the node it was read from
    published_at: float = Field(default_factory=time.time)


def chain_head_key(number: int) -> bytes:
    """The record key of a block: its number in decimal."""
    return str(number).encode()


def header_of(block: dict[str, Any]) -> dict[str, Any]:
    """A node's block object (full=false) reduced to the header newHeads sends."""
    return {name: value for name, value in block.items() if name not in NOT_IN_HEADER}


class HeadSequence:
    """The last block number delivered; refuses any number at or below it."""

    def __init__(self) -> None:
        self.last: int | None = None

    def accept(self, number: int) -> bool:
        """Whether `number` is new (then it becomes the last delivered)."""
        if self.last is not None and number <= self.last:
            return False
        self.last = number
        return True
