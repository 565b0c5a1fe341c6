"""Dropping a write's journal records once its task can never be delivered again.

The journal keeps a task's signed bytes so that a redelivered task re-broadcasts them
instead of signing anew. A task is redelivered only from its partition's committed offset
on, so once the commit point has passed a finished task its records serve no one. Every
provider mirrors the whole journal in memory: without this, that mirror grows with every
write for as long as the provider runs.

Tombstones are written only after the commit succeeded, never before, so a crash in
between leaves a record behind (kept, harmless) and never loses one still needed.

A settled record whose transaction is not mined yet is kept until it is: the provider
that gets the partition next reads the sender's latest nonces and the transactions to
send again from it (transactions.py). A provider that stops or dies before then leaves
those records behind, as above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiokafka import TopicPartition

from ethgw_wire.topic_mirror import TopicMirror
from provider import metrics
from provider.transactions import JournalRecord, journal_keys

log = logging.getLogger("ethgw.provider.journal")


class JournalPruner:
    def __init__(
        self,
        journal: TopicMirror[JournalRecord],
        unmined: Callable[[str], bool] = lambda tx_hash: False,
    ) -> None:
        self._journal = journal
        self._unmined = unmined  # by tx hash: still waiting for the chain (the rebroadcaster)
        self._until_mined: list[str] = []  # settled, kept while their transaction is not mined
        # Per partition: (offset, journal keys) of finished tasks, not yet passed by a commit.
        self._finished: dict[TopicPartition, list[tuple[int, list[str]]]] = {}
        self._to_delete: list[str] = []  # settled, tombstones not yet written

    def finished(self, tp: TopicPartition, offset: int, task_id: str) -> None:
        """A task's result is published; remember its records until a commit passes it."""
        keys = [key for key in journal_keys(task_id) if self._journal.get(key) is not None]
        if keys:
            self._finished.setdefault(tp, []).append((offset, keys))

    def settled(self, points: dict[TopicPartition, int]) -> list[str]:
        """The journal keys of finished tasks below the committed points; forgotten here."""
        keys: list[str] = []
        for tp, point in points.items():
            waiting = self._finished.get(tp, [])
            keys += [key for offset, task_keys in waiting if offset < point for key in task_keys]
            self._finished[tp] = [entry for entry in waiting if entry[0] >= point]
        return keys

    async def committed(self, points: dict[TopicPartition, int]) -> int:
        """Tombstone the records the commit settled (and any a failed try left, and any
        kept until mined that are mined now); how many."""
        waiting, self._until_mined = self._until_mined + self.settled(points), []
        for key in waiting:
            record = self._journal.get(key)
            if record is not None and self._unmined(record.tx_hash):
                self._until_mined.append(key)
            else:
                self._to_delete.append(key)
        if not self._to_delete:
            return 0
        try:
            await self._journal.delete(self._to_delete)
        except Exception as exc:
            # Kafka away: the commit stands, the records are only kept a little longer.
            log.warning(
                "journal tombstones not written keys=%d error=%r", len(self._to_delete), exc
            )
            return 0
        pruned, self._to_delete = len(self._to_delete), []
        metrics.JOURNAL_PRUNED.inc(pruned)
        metrics.JOURNAL_RECORDS.set(len(self._journal))
        return pruned

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions gone to another provider: their next owner settles what is left."""
        for tp in partitions:
            self._finished.pop(tp, None)

    @property
    def waiting(self) -> int:
        return sum(len(entries) for entries in self._finished.values())

    def any_mined(self) -> bool:
        """Whether a record kept until mined may be tombstoned now."""
        for key in self._until_mined:
            record = self._journal.get(key)
            if record is None or not self._unmined(record.tx_hash):
                return True
        return False

    @property
    def kept_until_mined(self) -> int:
        return len(self._until_mined)
