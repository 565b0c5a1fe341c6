"""The failed-unlock throttle: at most `limit` failures of one key tried in any window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from provider.unlock_throttle import FailureThrottle


def test_the_attempt_after_limit_failures_waits_for_the_oldest_to_leave_the_window() -> None:
    """Three failures in a 60 s window of limit 3: the next attempt waits until the first
    failure is 60 s old."""
    throttle = FailureThrottle(limit=3, window_s=60.0)
    for at in (0.0, 10.0, 20.0):
        assert throttle.wait_s("a", at) == 0.0
        throttle.failed("a", at)
    assert throttle.wait_s("a", 30.0) == 30.0
    assert throttle.wait_s("a", 60.0) == 0.0


def test_keys_are_counted_apart() -> None:
    """One key's failures never hold back another key."""
    throttle = FailureThrottle(limit=1, window_s=60.0)
    throttle.failed("a", 0.0)
    assert throttle.wait_s("a", 1.0) > 0
    assert throttle.wait_s("b", 1.0) == 0.0


def test_a_withdrawn_failure_no_longer_counts() -> None:
    """An attempt counted before it ran and then succeeded is taken back."""
    throttle = FailureThrottle(limit=1, window_s=60.0)
    throttle.failed("a", 5.0)
    throttle.withdraw("a", 5.0)
    assert throttle.wait_s("a", 6.0) == 0.0


def test_memory_is_bounded_by_the_keys_tracked() -> None:
    """A flood of distinct keys keeps at most max_tracked of them."""
    throttle = FailureThrottle(limit=1, window_s=60.0, max_tracked=10)
    for n in range(100):
        throttle.failed(f"k{n}", 0.0)
    assert sum(throttle.wait_s(f"k{n}", 1.0) > 0 for n in range(100)) == 10


@given(
    limit=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=60),
)
def test_no_window_ever_admits_more_than_limit_failures(limit: int, gaps: list[float]) -> None:
    """An attacker who tries whenever allowed, and always fails, gets at most `limit`
    tries in any window of window_s."""
    window = 60.0
    throttle = FailureThrottle(limit=limit, window_s=window)
    now, tried = 0.0, []
    for gap in gaps:
        now += gap
        if throttle.wait_s("a", now) == 0.0:
            throttle.failed("a", now)
            tried.append(now)
    for start in tried:
        assert sum(start <= t < start + window for t in tried) <= limit
