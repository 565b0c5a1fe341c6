"""The restart rule of `ethgw up`: backoff, its reset after an uptime, and crash loops."""

from __future__ import annotations

import pytest

from devstack.restart_policy import Restart, RestartHistory, RestartPolicy

POLICY = RestartPolicy(
    backoff_s=1.0, backoff_max_s=8.0, reset_after_s=30.0, loop_exits=5, loop_window_s=300.0
)


def exits(policy: RestartPolicy, at: list[tuple[float, float]]) -> list[Restart]:
    """The restarts for exits at (time, uptime before it) pairs, in order."""
    history, restarts = RestartHistory(), []
    for now, uptime_s in at:
        history, restart = policy.on_exit(history, uptime_s, now)
        restarts.append(restart)
    return restarts


def test_first_exit_is_restarted_after_the_base_backoff() -> None:
    """A process's first exit is restarted after backoff_s, and counts as restart 1."""
    assert exits(POLICY, [(100.0, 60.0)]) == [Restart(1.0, 1, False, 1)]


def test_backoff_doubles_per_exit_in_a_row_up_to_its_cap() -> None:
    """Exits in a row, each soon after its start, double the wait up to backoff_max_s."""
    policy = RestartPolicy(backoff_s=1.0, backoff_max_s=5.0, loop_exits=100)
    restarts = exits(policy, [(float(t), 0.5) for t in range(5)])
    assert [r.backoff_s for r in restarts] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_long_enough_uptime_resets_the_backoff() -> None:
    """A process that stayed up reset_after_s before it exited waits backoff_s again."""
    restarts = exits(POLICY, [(0.0, 1.0), (2.0, 1.0), (40.0, 35.0)])
    assert [r.backoff_s for r in restarts] == [1.0, 2.0, 1.0]


def test_restarts_keep_counting_across_resets() -> None:
    """The restart count (shown on the status line) never starts over."""
    restarts = exits(POLICY, [(0.0, 60.0), (100.0, 60.0), (1000.0, 60.0)])
    assert [r.restarts for r in restarts] == [1, 2, 3]


def test_loop_exits_within_the_window_is_a_crash_loop_restarted_at_the_cap() -> None:
    """The loop_exits-th exit within loop_window_s is a crash loop, still restarted, at the cap,
    even when each run lasted past reset_after_s."""
    restarts = exits(POLICY, [(t * 40.0, 35.0) for t in range(6)])
    assert [r.crash_loop for r in restarts] == [False, False, False, False, True, True]
    assert [r.backoff_s for r in restarts] == [1.0, 1.0, 1.0, 1.0, 8.0, 8.0]


def test_exits_older_than_the_window_are_forgotten() -> None:
    """Exits spread wider than loop_window_s never make a crash loop."""
    restarts = exits(POLICY, [(t * 100.0, 60.0) for t in range(10)])
    assert not any(r.crash_loop for r in restarts)
    assert {r.recent_exits for r in restarts[2:]} == {3}


def test_a_huge_exit_count_stays_at_the_cap() -> None:
    """The doubling never overflows: any count past the cap waits backoff_max_s."""
    assert POLICY.backoff_for(10_000) == 8.0


def test_a_cap_below_the_base_is_refused() -> None:
    """backoff_max_s under backoff_s is a configuration error, not a silent cap."""
    with pytest.raises(ValueError, match="backoff_max_s"):
        RestartPolicy(backoff_s=2.0, backoff_max_s=1.0)
