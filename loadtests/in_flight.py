"""The counted requests under way, for what a cell leaves out when its N-th request ends.

A cell counts the first N requests to end (the thesis's time to finish). Those still under
way at that moment are in none of its other figures: a system that holds requests long,
past the end, would look faster than it is without their count, and without a p99 that
counts each of them at its age then (a lower bound of what it would have taken)."""

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

    def ages_at(self, moment: float) -> list[float]:
        """How long each request under way at `moment` has been (seconds), oldest first."""
        return sorted((max(0.0, moment - began) for began in self._began.values()), reverse=True)
