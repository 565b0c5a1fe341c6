"""Validation of NodeState, Task and the scheduler's settings: clear errors, not silent fixes."""

from __future__ import annotations

import dataclasses
import math

import pytest

from balancer import LBHScheduler, NodeState, Task, TaskClass


@pytest.mark.parametrize("field", ["memory", "cpu"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf])
def test_ratio_outside_unit_range_is_refused(field, value):
    """memory or cpu outside [0, 1] (or NaN) raises ValueError naming the node and the field."""
    args = {"memory": 0.5, "cpu": 0.5, field: value}
    with pytest.raises(ValueError, match=rf"'n1': {field} must be within \[0, 1\]"):
        NodeState("n1", **args)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_ratio_on_the_ends_of_the_range_is_accepted(value):
    """0 and 1 are valid ratios."""
    assert NodeState("n", value, value).memory == value


def test_negative_inflight_is_refused():
    """A negative in-flight count raises ValueError."""
    with pytest.raises(ValueError, match="inflight must be >= 0"):
        NodeState("n", 0.1, 0.1, inflight=-1)


def test_fractional_inflight_is_refused():
    """inflight counts tasks, so a float raises TypeError."""
    with pytest.raises(TypeError):
        NodeState("n", 0.1, 0.1, inflight=1.5)  # type: ignore[arg-type]


def test_nan_free_memory_is_refused():
    """A NaN free-memory figure raises ValueError; None is the way to say unknown."""
    with pytest.raises(ValueError, match="free_memory_mb is NaN"):
        NodeState("n", 0.1, 0.1, free_memory_mb=math.nan)


def test_negative_free_memory_is_accepted():
    """A node over its budget may report negative free memory."""
    assert NodeState("n", 0.1, 0.1, free_memory_mb=-3.0).free_memory_mb == -3.0


def test_node_state_is_immutable():
    """NodeState is frozen, so no one can change a state a plan was made from."""
    node = NodeState("n", 0.1, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.inflight = 3  # type: ignore[misc]


def test_task_class_given_by_name_is_converted():
    """Task accepts the class's name and stores the TaskClass member."""
    assert Task("t", "MCT").cls is TaskClass.MCT  # type: ignore[arg-type]


def test_unknown_task_class_is_refused():
    """A class name that is not RT, DT, MAT or MCT raises ValueError."""
    with pytest.raises(ValueError, match="'WT'"):
        Task("t", "WT")  # type: ignore[arg-type]


def test_non_finite_enqueue_time_is_refused():
    """enqueued_at must be finite, since it orders the tasks."""
    with pytest.raises(ValueError, match="enqueued_at"):
        Task("t", TaskClass.RT, enqueued_at=math.nan)


@pytest.mark.parametrize(
    ("low", "high", "field"),
    [
        (-0.1, 1.0, "dis_avemin must be >= 0"),
        (0.2, 1.5, r"dis_avemax must be <= sqrt\(2\)"),
        (0.6, 0.6, "dis_avemin must be < dis_avemax"),
        (0.8, 0.4, "dis_avemin must be < dis_avemax"),
        (math.nan, 1.0, "dis_avemin must be a finite number"),
        (0.2, math.inf, "dis_avemax must be a finite number"),
    ],
)
def test_scheduler_refuses_invalid_bounds(low, high, field):
    """LBHScheduler raises ValueError naming the offending bound (spec section 2)."""
    with pytest.raises(ValueError, match=field):
        LBHScheduler(dis_avemin=low, dis_avemax=high)


def test_scheduler_accepts_the_widest_bounds():
    """0 and sqrt(2) themselves are allowed."""
    assert LBHScheduler(0.0, math.sqrt(2)).calibration.dis_ave == math.sqrt(2) / 2


@pytest.mark.parametrize("delta", [-0.01, math.nan, math.inf])
def test_scheduler_refuses_bad_delta(delta):
    """delta must be finite and >= 0."""
    with pytest.raises(ValueError, match="delta"):
        LBHScheduler(0.2, 1.0, delta=delta)


def test_scheduler_defaults():
    """delta defaults to 0.05 and every class needs no memory unless told."""
    sched = LBHScheduler(0.2, 1.0)
    assert sched.delta == 0.05
    assert dict(sched.task_memory_mb) == dict.fromkeys(TaskClass, 0.0)


def test_memory_table_by_class_name():
    """task_memory_mb may be keyed by the class names; missing classes need 0."""
    sched = LBHScheduler(0.2, 1.0, task_memory_mb={"MAT": 64})  # type: ignore[dict-item]
    assert sched.task_memory_mb[TaskClass.MAT] == 64.0
    assert sched.task_memory_mb[TaskClass.RT] == 0.0


def test_memory_table_refuses_unknown_class():
    """An unknown class in task_memory_mb raises ValueError."""
    with pytest.raises(ValueError, match="unknown task class 'XT'"):
        LBHScheduler(0.2, 1.0, task_memory_mb={"XT": 1.0})  # type: ignore[dict-item]


@pytest.mark.parametrize("mb", [-1.0, math.nan])
def test_memory_table_refuses_bad_demand(mb):
    """A negative or NaN demand raises ValueError naming the class."""
    with pytest.raises(ValueError, match=r"task_memory_mb\[DT\]"):
        LBHScheduler(0.2, 1.0, task_memory_mb={TaskClass.DT: mb})


def test_plan_refuses_duplicate_node_ids():
    """Two states for one node id cannot both be true: ValueError."""
    nodes = [NodeState("A", 0.1, 0.1), NodeState("A", 0.2, 0.2)]
    with pytest.raises(ValueError, match="'A' appears more than once"):
        LBHScheduler(0.2, 1.0).plan(nodes, [])


def test_duplicate_task_ids_are_separate_tasks():
    """Task ids are echoed, not interpreted: a redelivered id is placed as another task."""
    tasks = [Task("t", TaskClass.RT), Task("t", TaskClass.RT)]
    plan = LBHScheduler(0.2, 1.0).plan([NodeState("A", 0.1, 0.1)], tasks)
    assert plan.assignments == [("t", "A"), ("t", "A")]
