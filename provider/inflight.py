"""This provider's tasks in flight per node: the count now, and the count at a recent moment.

A node report is up to a sample interval old when a round reads it. A strategy that corrects
the sampled load by the tasks started and finished since (lbh_adaptive's live d) needs the
count as it was when the sample was taken; this book keeps each node's recent changes so it
can answer that from the report's `sampled_at`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping

# Prune a node's history only once this many entries have aged out (amortised O(1) per change).
_PRUNE_BATCH = 64


class _History:
    """One node's counts after each change, in time order, from a baseline on."""

    def __init__(self) -> None:
        self.times: list[float] = [float("-inf")]
        self.counts: list[int] = [0]

    def note(self, at: float, count: int, horizon: float) -> None:
        # A clock stepping back must not unsort the times the lookups bisect.
        self.times.append(max(at, self.times[-1]))
        self.counts.append(count)
        aged = bisect_right(self.times, horizon) - 1  # the last entry at or before it stays
        if aged >= _PRUNE_BATCH:
            del self.times[:aged], self.counts[:aged]

    def at(self, moment: float) -> int:
        index = bisect_right(self.times, moment) - 1
        return self.counts[max(index, 0)]


class InflightBook:
    """Tasks dispatched to each node and not finished, with `keep_s` seconds of history.

    A moment older than the history answers the oldest count kept: such a report is stale
    and its node DOWN anyway (keep_s is the provider's node_stale_s).
    """

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._now: Counter[str] = Counter()
        self._history: dict[str, _History] = {}

    @property
    def counts(self) -> Mapping[str, int]:
        """Tasks in flight per node now (0 for a node never used)."""
        return self._now

    def started(self, node_id: str, now: float) -> int:
        """One more task on the node; returns its count."""
        return self._change(node_id, 1, now)

    def finished(self, node_id: str, now: float) -> int:
        """One task less on the node; returns its count."""
        return self._change(node_id, -1, now)

    def at(self, node_id: str, moment: float) -> int:
        """The node's count at `moment` (its count now for a moment not yet past)."""
        history = self._history.get(node_id)
        return 0 if history is None else history.at(moment)

    def at_samples(self, sampled_at: Iterable[tuple[str, float]]) -> dict[str, int]:
        """Each node's count at its sample's time, from (node id, sampled_at) pairs."""
        return {node_id: self.at(node_id, moment) for node_id, moment in sampled_at}

    def _change(self, node_id: str, step: int, now: float) -> int:
        self._now[node_id] += step
        count = self._now[node_id]
        self._history.setdefault(node_id, _History()).note(now, count, now - self._keep_s)
        return count
