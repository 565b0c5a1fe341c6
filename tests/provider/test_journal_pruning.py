"""Which journal records a commit settles, and which it keeps until mined (the logic
above the real table and producer)."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import TopicPartition

from ethgw_wire.topic_mirror import MemoryTable
from provider.journal_pruning import JournalPruner
from provider.transactions import JournalRecord

TP = TopicPartition("ethgw.tasks.write", 0)
OTHER = TopicPartition("ethgw.tasks.write", 1)


class _Journal:
    """Only what the pruner reads of the mirror: which keys it holds."""

    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)

    def get(self, key: str) -> object | None:
        return key if key in self.keys else None


def _pruner(*keys: str) -> JournalPruner:
    return JournalPruner(cast(Any, _Journal(*keys)))


def test_a_commit_past_a_task_settles_its_records() -> None:
    """A commit point beyond a finished task's offset settles its own and its step's key."""
    pruner = _pruner("t1", "t1:fund")
    pruner.finished(TP, 5, "t1")
    assert sorted(pruner.settled({TP: 6})) == ["t1", "t1:fund"]


def test_a_commit_point_at_the_task_keeps_it() -> None:
    """The commit point is the next offset to read: a task at that offset may come again."""
    pruner = _pruner("t1")
    pruner.finished(TP, 5, "t1")
    assert pruner.settled({TP: 5}) == []


def test_a_settled_task_is_settled_once() -> None:
    """Once returned, a task's keys are forgotten by the pruner."""
    pruner = _pruner("t1")
    pruner.finished(TP, 5, "t1")
    pruner.settled({TP: 6})
    assert pruner.settled({TP: 9}) == []


def test_a_task_without_records_is_not_remembered() -> None:
    """A read task signs nothing: nothing to wait for."""
    pruner = _pruner()
    pruner.finished(TP, 1, "read")
    assert pruner.waiting == 0


def test_a_commit_of_another_partition_settles_nothing_here() -> None:
    """Offsets compare within their own partition only."""
    pruner = _pruner("t1")
    pruner.finished(TP, 5, "t1")
    assert pruner.settled({OTHER: 100}) == []


def test_dropped_partitions_forget_their_tasks() -> None:
    """Partitions gone to another provider: their next owner settles what is left."""
    pruner = _pruner("t1")
    pruner.finished(TP, 5, "t1")
    pruner.drop([TP])
    assert pruner.waiting == 0


def _record(task_id: str) -> JournalRecord:
    return JournalRecord(
        task_id=task_id, raw_tx="0x00", tx_hash=f"0x{task_id}", sender="0xabc", nonce=1
    )


async def test_a_settled_record_is_kept_until_its_transaction_is_mined() -> None:
    """A committed task whose transaction is not mined keeps its record (the partition's
    next owner reads nonces and rebroadcasts from it), tombstoned at a commit once mined."""
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    await journal.put("t1", _record("t1"))
    unmined = {"0xt1"}
    pruner = JournalPruner(journal, unmined=lambda tx_hash: tx_hash in unmined)
    pruner.finished(TP, 5, "t1")
    kept = await pruner.committed({TP: 6})
    ready_before = pruner.any_mined()
    unmined.clear()
    ready_after = pruner.any_mined()
    pruned = await pruner.committed({})
    assert (kept, ready_before, ready_after, pruned) == (0, False, True, 1)
    assert journal.get("t1") is None


async def test_a_mined_settled_record_is_tombstoned_at_the_commit() -> None:
    """A committed task whose transaction is mined loses its record at once."""
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    await journal.put("t1", _record("t1"))
    pruner = JournalPruner(journal, unmined=lambda tx_hash: False)
    pruner.finished(TP, 5, "t1")
    assert await pruner.committed({TP: 6}) == 1
    assert pruner.kept_until_mined == 0
