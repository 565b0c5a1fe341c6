"""The pause's safety valve helper (spec section 4), which plan() never applies itself."""

from __future__ import annotations

from balancer import LBHScheduler, NodeState, Task, TaskClass, forced_reads


def test_reads_go_to_the_up_node_of_smallest_distance():
    """Every read, oldest first, goes to the routable node with the smallest d; writes stay."""
    nodes = [
        NodeState("far", 0.9, 0.9),
        NodeState("near", 0.7, 0.7),
        NodeState("dead", 0.0, 0.0, down=True),
    ]
    tasks = [
        Task("w", TaskClass.MCT),
        Task("r2", TaskClass.RT, enqueued_at=2.0),
        Task("r1", TaskClass.RT, enqueued_at=1.0),
    ]
    assert LBHScheduler(0.2, 1.0).plan(nodes, tasks).paused
    assert forced_reads(nodes, tasks) == [("r1", "near"), ("r2", "near")]


def test_ties_go_to_the_lowest_id():
    """Two nodes at the same distance: the lowest id takes the reads."""
    nodes = [NodeState("b", 0.5, 0.5), NodeState("a", 0.5, 0.5)]
    assert forced_reads(nodes, [Task("r", TaskClass.RT)]) == [("r", "a")]


def test_nothing_when_no_node_is_up():
    """With every node DOWN there is nowhere to force reads to."""
    assert forced_reads([NodeState("a", 0, 0, down=True)], [Task("r", TaskClass.RT)]) == []
