"""Assignment rules of spec section 6 on small hand-made rounds."""

from __future__ import annotations

import pytest

from balancer import LBHScheduler, NodeState, Task, TaskClass, Zone


def _sched(**settings: object) -> LBHScheduler:
    return LBHScheduler(0.2, 1.0, **settings)  # type: ignore[arg-type]


def test_writes_prefer_zone_i():
    """A write goes to the zone I node even though the zone II node has fewer tasks."""
    nodes = [NodeState("busy", 0.5, 0.5), NodeState("safe", 0.3, 0.3, inflight=3)]
    plan = _sched().plan(nodes, [Task("w", TaskClass.MCT)])
    assert plan.assignments == [("w", "safe")]


def test_reads_prefer_zone_ii():
    """A read goes to the zone II node even though a zone I node is idler."""
    nodes = [NodeState("idle", 0.0, 0.0), NodeState("busy", 0.5, 0.5)]
    plan = _sched().plan(nodes, [Task("r", TaskClass.RT)])
    assert plan.assignments == [("r", "busy")]


def test_reads_fall_back_to_zone_i():
    """With no zone II node, reads go to zone I."""
    plan = _sched().plan([NodeState("idle", 0.1, 0.0)], [Task("r", TaskClass.RT)])
    assert plan.assignments == [("r", "idle")]


def test_smallest_predicted_distance_wins():
    """Inside a zone, d + delta * inflight decides, not d alone."""
    nodes = [NodeState("near", 0.1, 0.0, inflight=4), NodeState("far", 0.3, 0.0)]
    plan = _sched(delta=0.1).plan(nodes, [Task("w", TaskClass.DT)])
    assert plan.assignments == [("w", "far")]  # 0.1 + 0.4 > 0.3


def test_ties_go_to_the_lowest_node_id():
    """Equal predicted distances: the lowest id (string order) takes the task."""
    nodes = [NodeState("n2", 0.3, 0.0), NodeState("n10", 0.3, 0.0), NodeState("n3", 0.3, 0.0)]
    plan = _sched().plan(nodes, [Task("w", TaskClass.DT)])
    assert plan.assignments == [("w", "n10")]


def test_a_batch_spreads_as_inflight_grows():
    """Every assignment raises the node's d_hat, so one batch spreads over equal nodes."""
    nodes = [NodeState("a", 0.1, 0.0), NodeState("b", 0.1, 0.0)]
    tasks = [Task(f"w{i}", TaskClass.MCT) for i in range(4)]
    plan = _sched(delta=0.05).plan(nodes, tasks)
    assert [node for _, node in plan.assignments] == ["a", "b", "a", "b"]


def test_zero_delta_sends_a_batch_to_one_node():
    """With delta = 0 the predicted distance never moves, so the best node takes everything."""
    nodes = [NodeState("a", 0.1, 0.0), NodeState("b", 0.2, 0.0)]
    tasks = [Task(f"w{i}", TaskClass.MCT) for i in range(3)]
    plan = _sched(delta=0.0).plan(nodes, tasks)
    assert {node for _, node in plan.assignments} == {"a"}


def test_down_node_takes_nothing_and_is_left_out_of_health():
    """A DOWN node gets zone DOWN, no task, and no term in LBH even if it looks overloaded."""
    nodes = [NodeState("up", 0.1, 0.1), NodeState("dead", 1.0, 1.0, down=True)]
    plan = _sched().plan(nodes, [Task("w", TaskClass.MCT), Task("r", TaskClass.RT)])
    assert plan.zones["dead"] is Zone.DOWN
    assert plan.lbh == pytest.approx(0.6 - 0.1 * 2**0.5)
    assert {node for _, node in plan.assignments} == {"up"}
    assert plan.recycle == []


def test_zone_iii_node_takes_nothing_and_is_listed_for_recycling():
    """A zone III node gets no task even when it is the only other node."""
    nodes = [NodeState("ok", 0.0, 0.0), NodeState("hot", 0.8, 0.7)]  # LBH 0.6 - 0.463 > 0
    plan = _sched().plan(nodes, [Task("r", TaskClass.RT), Task("w", TaskClass.MCT)])
    assert plan.paused is False
    assert {node for _, node in plan.assignments} == {"ok"}
    assert plan.recycle == ["hot"]


def test_memory_demand_makes_a_node_infeasible():
    """A node whose free memory is below the task's demand is skipped."""
    nodes = [NodeState("small", 0.0, 0.0, free_memory_mb=10), NodeState("big", 0.3, 0.0)]
    plan = _sched(task_memory_mb={TaskClass.MAT: 64}).plan(nodes, [Task("w", TaskClass.MAT)])
    assert plan.assignments == [("w", "big")]


def test_memory_given_in_the_round_counts():
    """Free memory is reduced by what the round already gave the node."""
    nodes = [NodeState("a", 0.0, 0.0, free_memory_mb=100)]
    tasks = [Task(f"w{i}", TaskClass.DT) for i in range(3)]
    plan = _sched(task_memory_mb={TaskClass.DT: 40}).plan(nodes, tasks)
    assert plan.assignments == [("w0", "a"), ("w1", "a")]
    assert plan.held == ["w2"]


def test_exact_fit_is_feasible():
    """Free memory equal to the demand is enough ("at least t_mem")."""
    nodes = [NodeState("a", 0.0, 0.0, free_memory_mb=64)]
    plan = _sched(task_memory_mb={TaskClass.MAT: 64}).plan(nodes, [Task("w", TaskClass.MAT)])
    assert plan.assignments == [("w", "a")]


def test_node_without_memory_figure_is_always_feasible():
    """free_memory_mb None means no constraint for that node."""
    nodes = [NodeState("a", 0.0, 0.0, free_memory_mb=None)]
    tasks = [Task(f"w{i}", TaskClass.DT) for i in range(5)]
    plan = _sched(task_memory_mb={TaskClass.DT: 1e9}).plan(nodes, tasks)
    assert len(plan.assignments) == 5


def test_writes_spill_to_zone_ii_when_zone_i_is_full():
    """When no zone I node has memory left, a write goes to zone II."""
    nodes = [NodeState("I", 0.0, 0.0, free_memory_mb=5), NodeState("II", 0.5, 0.5)]
    plan = _sched(task_memory_mb={TaskClass.MCT: 10}).plan(nodes, [Task("w", TaskClass.MCT)])
    assert plan.assignments == [("w", "II")]


def test_small_task_still_fits_where_a_large_one_did_not():
    """A node too full for a deploy can still take a cheaper read later in the round."""
    nodes = [NodeState("a", 0.1, 0.0, free_memory_mb=20)]
    tasks = [Task("d", TaskClass.DT), Task("r", TaskClass.RT)]
    plan = _sched(task_memory_mb={TaskClass.DT: 50, TaskClass.RT: 1}).plan(nodes, tasks)
    assert plan.assignments == [("r", "a")]
    assert plan.held == ["d"]


def test_held_write_holds_later_writes_of_its_account():
    """When X's deploy cannot be placed, X's later cheap write waits too; Y's does not."""
    nodes = [NodeState("a", 0.0, 0.0, free_memory_mb=10)]
    tasks = [
        Task("x1", TaskClass.DT, account="X"),
        Task("x2", TaskClass.MCT, account="X"),
        Task("y1", TaskClass.MCT, account="Y"),
    ]
    plan = _sched(task_memory_mb={TaskClass.DT: 50, TaskClass.MCT: 1}).plan(nodes, tasks)
    assert plan.assignments == [("y1", "a")]
    assert plan.held == ["x1", "x2"]


def test_no_routable_node_holds_everything_without_pausing():
    """With every node DOWN, LBH is an empty sum (0): not paused, but all tasks held."""
    plan = _sched().plan([NodeState("a", 0.1, 0.1, down=True)], [Task("r", TaskClass.RT)])
    assert (plan.paused, plan.lbh, plan.held) == (False, 0.0, ["r"])


def test_health_of_exactly_zero_dispatches():
    """LBH = 0 is healthy (>= 0): the round dispatches."""
    # Dis_ave 0.5; terms +0.25 and -0.25 are exact in binary floating point.
    nodes = [NodeState("a", 0.25, 0.0), NodeState("b", 0.75, 0.0)]
    plan = LBHScheduler(0.25, 0.75).plan(nodes, [Task("r", TaskClass.RT)])
    assert plan.lbh == 0.0
    assert plan.paused is False
    assert plan.assignments == [("r", "b")]


def test_empty_round():
    """No nodes and no tasks: an empty, healthy plan."""
    plan = _sched().plan([], [])
    assert (plan.assignments, plan.held, plan.recycle, plan.zones) == ([], [], [], {})
    assert (plan.lbh, plan.paused) == (0.0, False)


def test_plan_reports_distances():
    """plan.distances holds every node's d (an extra beyond the spec's attributes)."""
    plan = _sched().plan([NodeState("a", 0.3, 0.4)], [])
    assert plan.distances == {"a": pytest.approx(0.5)}
