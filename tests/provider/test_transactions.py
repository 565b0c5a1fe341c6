"""The transaction sender with an in-memory journal and node: what it signs, journals
and broadcasts (the real chain path runs in tests/pipeline)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_account import Account

from ethgw_wire.errors import InsufficientFundsError, TaskError
from ethgw_wire.operations import ADMIN_SIGNER
from ethgw_wire.topic_mirror import MemoryTable
from provider.accounts import AccountBook
from provider.chain import AlreadyKnownError, NonceTooLowError
from provider.nonces import NonceTracker
from provider.transactions import JournalRecord, TransactionSender
from service_kit.keyfiles import ChainAccount, Scrypt
from tests.provider.fake_node import FakeNode

RECIPIENT = "0x" + "22" * 20


@dataclass
class _Signer:
    """A platform signer without a keystore file: its key is at hand."""

    address: str
    key: bytes

    def private_key(self) -> bytes:
        return self.key


def _sender() -> tuple[TransactionSender, MemoryTable[JournalRecord]]:
    account = Account.create()
    signer = _Signer(account.address, bytes(account.key))
    signers = {ADMIN_SIGNER: cast(ChainAccount, signer)}
    accounts = AccountBook(MemoryTable("accounts"), Scrypt(2, 4), signers)
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    return TransactionSender(accounts, NonceTracker(), journal, None, 1.25), journal


def _transfer(value: int = 1) -> dict[str, Any]:
    return {"to": RECIPIENT, "value": value}


async def test_a_retried_task_broadcasts_the_journaled_bytes_again() -> None:
    """A task sent again (on another node) re-broadcasts the same signed transaction."""
    sender, journal = _sender()
    first, second = FakeNode("node-1"), FakeNode("node-2")
    sent = await sender.send(first, "task-1", ADMIN_SIGNER, _transfer())
    again = await sender.send(second, "task-1", ADMIN_SIGNER, _transfer())
    assert second.received == first.received
    assert again.tx_hash == sent.tx_hash
    assert again.rebroadcast
    assert len(journal) == 1


async def test_the_transaction_is_journaled_before_it_is_broadcast() -> None:
    """A node that refuses the broadcast leaves the signed bytes in the journal."""
    sender, journal = _sender()
    node = FakeNode()
    node.refusals.append(InsufficientFundsError("eth_sendRawTransaction: insufficient funds"))
    with pytest.raises(InsufficientFundsError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    record = journal.get("task-1")
    assert record is not None
    assert node.received == []


async def test_one_signers_writes_take_nonces_in_task_order() -> None:
    """Concurrent writes of one signer get consecutive nonces, in the order they started."""
    sender, journal = _sender()
    node = FakeNode()
    sends = [sender.send(node, f"task-{i}", ADMIN_SIGNER, _transfer(i + 1)) for i in range(4)]
    sent = await asyncio.gather(*sends)
    assert [s.nonce for s in sent] == [0, 1, 2, 3]
    in_order = [journal.get(f"task-{i}") for i in range(4)]
    assert node.received == [record.raw_tx for record in in_order if record is not None]


async def test_a_node_that_already_holds_the_transaction_counts_as_sent() -> None:
    """ "already known" for the journaled bytes is success, not a failure."""
    sender, _ = _sender()
    node = FakeNode()
    node.refusals.append(AlreadyKnownError("eth_sendRawTransaction: already known"))
    sent = await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 0


async def test_a_nonce_taken_by_another_transaction_is_signed_again() -> None:
    """ "nonce too low" for a transaction the node does not know: resync and sign once more."""
    sender, journal = _sender()
    node = FakeNode()
    node.refusals.append(NonceTooLowError("eth_sendRawTransaction: nonce too low"))
    sent = await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    record = journal.get("task-1")
    assert record is not None
    assert node.received == [record.raw_tx]
    assert sent.tx_hash == record.tx_hash


async def test_a_refused_transaction_gives_its_nonce_back() -> None:
    """A write the node refuses does not leave a gap: the next write takes its nonce."""
    sender, _ = _sender()
    node = FakeNode()
    node.refusals.append(TaskError("eth_sendRawTransaction: the node refused"))
    with pytest.raises(TaskError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    sent = await sender.send(node, "task-2", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 0
