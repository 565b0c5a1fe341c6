"""The self-healing rule: backoff per death within a window, and the crash-loop limit."""

from __future__ import annotations

import pytest

from geth_cluster.config import ManagerSettings
from geth_cluster.crash_policy import CrashHistory, CrashPolicy, GiveUp, Restart

POLICY = CrashPolicy(backoff_s=1.0, backoff_max_s=5.0, max_restarts=3, window_s=100.0)


def deaths(policy: CrashPolicy, times: list[float]) -> list[Restart | GiveUp]:
    """The decisions for deaths seen at `times`, in order."""
    history, decisions = CrashHistory(), []
    for now in times:
        history, decision = policy.on_death(history, now)
        decisions.append(decision)
    return decisions


def test_first_death_is_restarted_after_the_base_backoff() -> None:
    """A node's first death is restarted after backoff_s."""
    assert deaths(POLICY, [10.0]) == [Restart(delay_s=1.0, deaths=1)]


def test_backoff_doubles_per_death_up_to_its_cap() -> None:
    """Each further death in the window doubles the wait, never past backoff_max_s."""
    policy = CrashPolicy(backoff_s=1.0, backoff_max_s=5.0, max_restarts=10, window_s=100.0)
    delays = [
        d.delay_s for d in deaths(policy, [0.0, 1.0, 2.0, 3.0, 4.0]) if isinstance(d, Restart)
    ]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_death_past_the_limit_in_the_window_is_a_crash_loop() -> None:
    """The death after max_restarts restarts within window_s gives up on the node."""
    decisions = deaths(POLICY, [0.0, 10.0, 20.0, 30.0])
    assert [type(d) for d in decisions] == [Restart, Restart, Restart, GiveUp]
    assert decisions[-1] == GiveUp(deaths=4)


def test_deaths_older_than_the_window_are_forgotten() -> None:
    """Deaths spread wider than window_s never make a loop, and the backoff starts over."""
    decisions = deaths(POLICY, [0.0, 60.0, 120.0, 180.0, 240.0])
    assert all(isinstance(d, Restart) for d in decisions)
    assert [d.deaths for d in decisions if isinstance(d, Restart)] == [1, 2, 2, 2, 2]


def test_zero_restarts_allowed_gives_up_at_the_first_death() -> None:
    """max_restarts 0: a dead node is reported and left, never restarted."""
    policy = CrashPolicy(max_restarts=0)
    history, decision = policy.on_death(CrashHistory(), 5.0)
    assert decision == GiveUp(deaths=1)
    assert history.gave_up


def test_a_huge_death_count_stays_at_the_cap() -> None:
    """The doubling never overflows: any count past the cap waits backoff_max_s."""
    assert POLICY.delay_s(10_000) == 5.0


def test_settings_refuse_a_cap_below_the_backoff() -> None:
    """ETHGW_MANAGER_HEAL_BACKOFF_MAX_S below _HEAL_BACKOFF_S is refused at start-up."""
    with pytest.raises(ValueError, match="backoff_max_s"):
        ManagerSettings(heal_backoff_s=10.0, heal_backoff_max_s=1.0)
