"""The overload demo's reading of the manager's samples: occupancy, timeline, back in service."""

from __future__ import annotations

from collections import Counter

from loadtests.overload import (
    Burner,
    OverloadPlan,
    OverloadReport,
    back_in_service_s,
    by_class_and_zone,
    first_zone3_s,
    occupancy,
    report_lines,
    timeline,
    verdict,
)
from loadtests.sampler import ZoneSample


def sample(at: float, node: str, zone: str, lifecycle: str = "up") -> ZoneSample:
    return ZoneSample(at, node, zone, 0.1, 0.1, lifecycle, 0.5)


SAMPLES = [
    sample(1, "node-2", "I"),
    sample(2, "node-2", "II"),
    sample(3, "node-2", "III"),
    sample(4, "node-2", "III", "draining"),
    sample(5, "node-2", "DOWN", "restarting"),
    sample(6, "node-2", "I", "syncing"),
    sample(7, "node-2", "I"),
    sample(3, "node-1", "I"),
]


def test_occupancy_counts_zones_of_routable_nodes_and_states_of_the_others() -> None:
    """A sample counts under its zone when the node is UP, else under its life-cycle state."""
    found = occupancy(SAMPLES, 2.0, 7.0)
    assert found["node-2"] == Counter(
        {"II": 1, "III": 1, "draining": 1, "restarting": 1, "syncing": 1}
    )
    assert found["node-1"] == Counter({"I": 1})


def test_timeline_merges_consecutive_samples_of_one_state() -> None:
    """The node's states over time as runs with their first and last sample's time."""
    more = [*SAMPLES, sample(8, "node-2", "I")]
    assert timeline(more, "node-2")[-1] == ("I", 7, 8)
    assert [state for state, _, _ in timeline(more, "node-2")] == [
        "I", "II", "III", "draining", "restarting", "syncing", "I",
    ]  # fmt: skip


def test_back_in_service_is_the_first_up_sample_in_zone_i_or_ii_after_the_restart() -> None:
    """A syncing node in zone I is not back yet; the UP sample after it is."""
    assert back_in_service_s(SAMPLES, "node-2", after_s=4.5) == 7
    assert back_in_service_s(SAMPLES, "node-2", after_s=8.0) is None


def test_zone3_is_the_first_zone3_sample_after_the_overload() -> None:
    """The first sample in zone III at or after the given time; None when there is none."""
    assert first_zone3_s(SAMPLES, "node-2", 0.0) == 3
    assert first_zone3_s(SAMPLES, "node-1", 0.0) is None


def test_dispatches_are_summed_per_class_over_the_nodes_of_each_zone() -> None:
    """Counts of (node, zone, class) become, per class, counts per zone."""
    counts = Counter({("node-1", "I", "MCT"): 3, ("node-2", "I", "MCT"): 2,
                      ("node-2", "II", "RT"): 5, ("node-1", "I", "RT"): 0})  # fmt: skip
    assert by_class_and_zone(counts) == {"MCT": Counter({"I": 5}), "RT": Counter({"II": 5})}


def report(zone3_at: float | None, back_at: float | None) -> OverloadReport:
    return OverloadReport(
        plan=OverloadPlan(node="node-2"),
        overload_at=2.0,
        zone3_at=zone3_at,
        draining_at=None,
        restarting_at=None if back_at is None else back_at - 1,
        up_at=None,
        back_at=back_at,
        ended_at=9.0,
        samples=SAMPLES,
        events=[],
        calls=[],
        dispatched_before=Counter(),
        dispatched_during=Counter(),
        burner=Burner("http://node-2", 1),
        mix={},
        bounds=(0.05, 0.22),
    )


def test_the_verdict_fails_a_node_that_never_reached_zone_iii_or_never_came_back() -> None:
    """ok only with zone III seen and the node back; otherwise the verdict names what failed."""
    assert verdict(report(3.0, 7.0)) == "ok"
    assert verdict(report(None, None)) == "FAILED: node-2 never reached zone III"
    assert verdict(report(3.0, None)) == "FAILED: node-2 never came back in service"
    assert not report(3.0, None).ok


def test_the_report_names_the_bounds_and_the_time_back_in_service() -> None:
    """The closing report says the manager's bounds and the seconds from overload to back."""
    lines = report_lines(report(3.0, 7.0))
    assert "the manager's bounds: Dis_avemin=0.0500 Dis_avemax=0.2200" in lines
    assert "time from overload to node-2 back in service: 5.0s" in lines
    assert lines[-1] == "verdict: ok"
