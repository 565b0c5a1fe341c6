"""Which offsets may be committed: tasks finish out of order, a commit is a watermark.

A partition's commit point is its oldest unfinished offset, so a crash
redelivers every task that had no result yet (and maybe some that had: the
results are idempotent by task id).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition


class OffsetBook:
    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def received(self, tp: TopicPartition, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        self._open.get(tp, set()).discard(offset)

    def open_count(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        chosen = self._open.keys() if partitions is None else partitions
        return sum(len(self._open.get(tp, ())) for tp in chosen)

    def to_commit(self) -> dict[TopicPartition, int]:
        """Commit points that moved since the last commit."""
        points = {}
        for tp, following in self._next.items():
            open_offsets = self._open.get(tp)
            point = min(open_offsets) if open_offsets else following
            if point > self._committed.get(tp, -1):
                points[tp] = point
        return points

    def committed(self, points: dict[TopicPartition, int]) -> None:
        self._committed.update(points)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions this provider no longer owns."""
        for tp in partitions:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
