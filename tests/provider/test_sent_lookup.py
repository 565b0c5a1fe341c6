"""A transaction the platform sent and a node has not heard of yet is looked up on the next
node, not answered "not found"."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account

from ethgw_wire.errors import NodeBehindError, NotFoundError
from ethgw_wire.operations import TxHashParams
from ethgw_wire.topic_mirror import MemoryTable
from provider.handlers import Handlers, Job
from provider.nonces import NonceTracker
from provider.transactions import JournalRecord, TransactionSender
from tests.provider.fake_node import FakeNode
from tests.provider.signed_records import signed_transfer


def _handlers(journal: MemoryTable[JournalRecord]) -> Handlers:
    unused = cast(Any, None)
    sender = TransactionSender(unused, NonceTracker(), journal, None, 1.25)
    return Handlers(unused, sender, unused, Path("platform.json"), 1.0, 0, ())


def _lookup(tx_hash: str, node: FakeNode) -> Job:
    return Job("t-1", TxHashParams(tx_hash=tx_hash), node, node.name, None, lambda: None)


async def test_a_sent_transaction_unknown_to_the_node_is_asked_of_the_next() -> None:
    """The journal holds it and the node answers null: node_behind, which the dispatcher
    tries on the next node."""
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    record = signed_transfer(Account.create(), 0, 1, Account.create().address)
    await journal.put(record.task_id, record)
    with pytest.raises(NodeBehindError):
        await _handlers(journal).table["tx.by_hash"](_lookup(record.tx_hash, FakeNode()))


async def test_an_unknown_transaction_is_not_found() -> None:
    """A hash no node and no journal knows stays a 404."""
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    tx_hash = "0x" + "ab" * 32
    with pytest.raises(NotFoundError):
        await _handlers(journal).table["tx.by_hash"](_lookup(tx_hash, FakeNode()))
