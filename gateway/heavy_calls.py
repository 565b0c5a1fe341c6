"""Per-key bound on heavy JSON-RPC calls running at once (in memory, one gateway process).

A heavy call (eth_call, eth_getLogs, ...) costs a node what its caller chooses. Each key
may run `per_key` of them at once; the next one is refused at once, so one key's flood
takes slots of its own, never another key's.
"""

from __future__ import annotations

from collections import Counter


class HeavyCallSlots:
    """How many heavy calls each key runs now, against one limit per key."""

    def __init__(self, per_key: int) -> None:
        if per_key < 1:
            raise ValueError("per_key must be >= 1")
        self.per_key = per_key
        self._running: Counter[str] = Counter()

    def take(self, key_id: str) -> bool:
        """One more heavy call for the key: True when it may run (release it after)."""
        if self._running[key_id] >= self.per_key:
            return False
        self._running[key_id] += 1
        return True

    def release(self, key_id: str) -> None:
        self._running[key_id] -= 1
        if self._running[key_id] <= 0:
            del self._running[key_id]  # memory stays bounded by the keys running calls

    def running(self, key_id: str) -> int:
        return self._running[key_id]
