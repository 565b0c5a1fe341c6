"""The circuit breaker's transitions, with the clock passed in."""

from __future__ import annotations

import pytest

from gateway.breaker import BreakerState, CircuitBreaker


def test_opens_after_threshold_consecutive_failures() -> None:
    """N consecutive failures open the breaker; fewer do not."""
    breaker = CircuitBreaker(failure_threshold=3, open_s=10)
    assert breaker.record_failure(0.0) is None
    assert breaker.record_failure(0.1) is None
    assert breaker.state(0.2) is BreakerState.CLOSED
    assert breaker.record_failure(0.2) is BreakerState.OPEN
    assert breaker.state(0.3) is BreakerState.OPEN
    assert not breaker.allow(0.3)


def test_success_resets_the_failure_count() -> None:
    """Failures separated by a success are not consecutive."""
    breaker = CircuitBreaker(failure_threshold=2, open_s=10)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(1.0)
    assert breaker.state(1.0) is BreakerState.CLOSED


def test_half_open_after_open_s_allows_exactly_one_trial() -> None:
    """Once open_s has passed one call may go; a second waits for the trial's outcome."""
    breaker = CircuitBreaker(failure_threshold=1, open_s=10)
    breaker.record_failure(0.0)
    assert not breaker.allow(9.9)
    assert breaker.state(10.0) is BreakerState.HALF_OPEN
    assert breaker.allow(10.0)
    assert not breaker.allow(10.1)
    assert not breaker.available(10.1)


def test_trial_success_closes() -> None:
    """A successful trial closes the breaker and every call may go again."""
    breaker = CircuitBreaker(failure_threshold=1, open_s=10)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    assert breaker.record_success() is BreakerState.CLOSED
    assert breaker.allow(10.1)
    assert breaker.allow(10.1)


def test_trial_failure_reopens_for_another_open_s() -> None:
    """A failed trial opens the breaker again, counted from the trial's failure."""
    breaker = CircuitBreaker(failure_threshold=1, open_s=10)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    assert breaker.record_failure(10.5) is BreakerState.OPEN
    assert breaker.state(20.0) is BreakerState.OPEN
    assert breaker.seconds_until_trial(20.0) == pytest.approx(0.5)
    assert breaker.state(20.5) is BreakerState.HALF_OPEN


def test_released_trial_frees_the_slot() -> None:
    """A trial abandoned by its caller lets the next call try."""
    breaker = CircuitBreaker(failure_threshold=1, open_s=1)
    breaker.record_failure(0.0)
    assert breaker.allow(1.0)
    breaker.release()
    assert breaker.allow(1.0)


def test_late_failures_do_not_extend_the_open_time() -> None:
    """Failures of calls sent before the breaker opened leave its reopening time alone."""
    breaker = CircuitBreaker(failure_threshold=1, open_s=10)
    breaker.record_failure(0.0)
    breaker.record_failure(5.0)
    assert breaker.state(10.0) is BreakerState.HALF_OPEN


def test_refuses_nonsense_settings() -> None:
    """A threshold below 1 or a non-positive open time is an error."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0, open_s=1)
    with pytest.raises(ValueError, match="open_s"):
        CircuitBreaker(failure_threshold=1, open_s=0)
