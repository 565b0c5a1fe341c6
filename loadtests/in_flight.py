"""The counted requests under way, for what a cell leaves out when its N-th request ends.

A cell counts the first N requests to end (the thesis's time to finish). Those still under
way at that moment are in none of its figures: a system that holds requests long, past the
end, would look faster than it is without these two numbers beside its p99."""

from __future__ import annotations

import itertools


class InFlight:
    """Requests begun and not yet ended, each with the moment it began."""

    def __init__(self) -> None:
        self._began: dict[int, float] = {}
        self._tokens = itertools.count()

    def began(self, at: float) -> int:
        """Note a request that began `at` (seconds); the token to end it with."""
        token = next(self._tokens)
        self._began[token] = at
        return token

    def ended(self, token: int) -> None:
        self._began.pop(token, None)

    def left_at(self, moment: float) -> tuple[int, float]:
        """How many requests are under way at `moment`, and for how long the oldest of them
        has been (0 when none is)."""
        oldest = min(self._began.values(), default=moment)
        return len(self._began), max(0.0, moment - oldest)
