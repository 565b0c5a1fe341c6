"""What a provider does with an account's writes when partitions move (the rebalance
listener, over in-memory tables; the real handover runs in tests/faults)."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import TopicPartition

from ethgw_wire.topic_mirror import MemoryTable
from provider.app import _Rebalance
from provider.nonces import NonceTracker
from provider.rebroadcast import Rebroadcaster
from provider.transactions import JournalRecord

TP = TopicPartition("ethgw.tasks.write", 0)
SENDER = "0x" + "ab" * 20


def _listener(
    journal: MemoryTable[JournalRecord], nonces: NonceTracker, rebroadcaster: Rebroadcaster
) -> _Rebalance:
    return _Rebalance(
        [cast(Any, journal)], cast(Any, journal), nonces, rebroadcaster, drain_timeout_s=1.0
    )


def _rebroadcaster() -> Rebroadcaster:
    return Rebroadcaster(
        lambda: None, after_s=6.0, interval_s=1.0, max_watched=100, max_age_s=600.0
    )


async def _chain_count() -> int:
    return 7


async def test_revoked_partitions_make_every_nonce_resync() -> None:
    """After a revocation the next nonce of an account is asked anew, not continued."""
    nonces = NonceTracker()
    await nonces.take(SENDER, _chain_count)
    await nonces.take(SENDER, _chain_count)
    listener = _listener(MemoryTable("journal"), nonces, _rebroadcaster())
    await listener.on_partitions_revoked({TP})
    assert await nonces.take(SENDER, _chain_count) == 7


async def test_assigned_partitions_adopt_the_journals_unmined_transactions() -> None:
    """The journal's records (another provider's, not mined yet) are watched here."""
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    record = JournalRecord(task_id="t1", raw_tx="0x00", tx_hash="0x01", sender=SENDER, nonce=3)
    await journal.put("t1", record)
    rebroadcaster = _rebroadcaster()
    await _listener(journal, NonceTracker(), rebroadcaster).on_partitions_assigned({TP})
    assert rebroadcaster.watching("0x01")
