"""Failed unlocks, counted per account and per API key, so that guessing a password costs
the guesser time and not the provider scrypt runs.

Each counter allows `limit` failures in any `window_s`: once a key has that many failures
in the window, every attempt is refused, without trying the password, until the oldest of
them is `window_s` old. Pure logic: the time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class FailureThrottle:
    def __init__(self, limit: int, window_s: float, max_tracked: int = 100_000) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a throttle needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._max_tracked = max_tracked
        # Failure times per key, oldest first; the least recently failed key first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, key: str, now: float) -> float:
        """How long attempts for this key stay refused: 0 when one may be tried now."""
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window_s - now

    def failed(self, key: str, now: float) -> None:
        """Count a failure of this key at `now`."""
        failures = self._recent(key, now)
        failures.append(now)
        self._failures[key] = failures
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)  # memory stays bounded under a flood of keys

    def withdraw(self, key: str, at: float) -> None:
        """Take back the failure counted at `at` (an attempt counted before it was tried,
        which succeeded)."""
        failures = self._failures.get(key)
        if failures is not None and at in failures:
            failures.remove(at)

    def forget(self, key: str) -> None:
        """Clear a key's failures (its password was right)."""
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures
