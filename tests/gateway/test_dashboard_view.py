"""The dashboard's pure parts: paused periods from the LBH history and the merged events."""

from __future__ import annotations

from gateway.dashboard import Pause, pause_events, pauses, recent_events


def test_no_negative_lbh_means_no_pause() -> None:
    """A history at or above 0 has no paused period (0 itself dispatches)."""
    assert pauses([(1.0, 0.5), (2.0, 0.0), (3.0, 0.2)]) == []


def test_a_pause_runs_from_the_first_negative_tick_to_the_first_non_negative() -> None:
    """LBH < 0 from t=2 to t=4: one pause [2, 4] with its lowest LBH."""
    history = [(1.0, 0.3), (2.0, -0.1), (3.0, -0.4), (4.0, 0.1), (5.0, 0.2)]
    assert pauses(history) == [Pause(2.0, 4.0, -0.4)]


def test_a_pause_still_running_has_no_end() -> None:
    """A history that ends paused gives a pause with end None."""
    assert pauses([(1.0, 0.3), (2.0, -0.1)]) == [Pause(2.0, None, -0.1)]


def test_separate_negative_runs_are_separate_pauses() -> None:
    """Two runs of negative ticks are two pauses."""
    history = [(1.0, -0.1), (2.0, 0.1), (3.0, -0.2), (4.0, 0.1)]
    assert pauses(history) == [Pause(1.0, 2.0, -0.1), Pause(3.0, 4.0, -0.2)]


def test_an_ended_pause_is_a_paused_and_a_resumed_event() -> None:
    """A finished pause gives two cluster events; one still running gives only `paused`."""
    kinds = [e["kind"] for e in pause_events([Pause(1.0, 2.0, -0.1), Pause(3.0, None, -0.2)])]
    assert kinds == ["paused", "resumed", "paused"]


def test_recent_events_are_newest_first_and_bounded() -> None:
    """Manager events and pauses are merged by time, newest first, cut at `keep`."""
    manager = [
        {"time": 1.0, "node": "node-1", "kind": "draining"},
        {"time": 5.0, "node": "node-1", "kind": "up"},
    ]
    merged = recent_events(manager, [Pause(2.0, 4.0, -0.3)], keep=3)
    assert [(e["time"], e["kind"]) for e in merged] == [
        (5.0, "up"),
        (4.0, "resumed"),
        (2.0, "paused"),
    ]
