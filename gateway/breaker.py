"""A circuit breaker per upstream instance: pure state, the caller passes the clock.

CLOSED counts consecutive failures and opens at the threshold. OPEN refuses every call
for `open_s`, then the breaker is HALF_OPEN: exactly one trial call goes through; its
success closes the breaker, its failure opens it again for another `open_s`.
"""

from __future__ import annotations

from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# The value of the state in the Prometheus gauge (0 = healthy, higher = worse).
BREAKER_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_s: float) -> None:
        if failure_threshold < 1 or open_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_s > 0")
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.failures = 0  # consecutive
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.open_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def available(self, now: float) -> bool:
        """Whether a call could go through now (without claiming the half-open trial)."""
        state = self.state(now)
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._trial_in_flight
        )

    def allow(self, now: float) -> bool:
        """Whether a call may go now; in HALF_OPEN this claims the single trial, which
        the caller must end with record_success, record_failure or release."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> BreakerState | None:
        """A call answered. Returns the new state when this changed it."""
        was_open = self._opened_at is not None
        self.failures = 0
        self._opened_at = None
        self._trial_in_flight = False
        # Any answer closes: a late success of a call sent before the breaker opened
        # proves the instance is back as well as the trial would.
        return BreakerState.CLOSED if was_open else None

    def record_failure(self, now: float) -> BreakerState | None:
        """A call failed (transport error or timeout). Returns the new state when this
        changed it."""
        self.failures += 1
        if self._trial_in_flight:
            self._trial_in_flight = False
            self._opened_at = now
            return BreakerState.OPEN
        if self._opened_at is None and self.failures >= self.failure_threshold:
            self._opened_at = now
            return BreakerState.OPEN
        # Failures of calls sent before the breaker opened do not extend the open time.
        return None

    def release(self) -> None:
        """A trial that ended with neither an answer nor a failure (the caller gave up)."""
        self._trial_in_flight = False

    def seconds_until_trial(self, now: float) -> float:
        """How long until a call may go (0 when it may go now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.open_s - now)
