"""The dispatch order of a round (spec section 5), seen through plan().assignments."""

from __future__ import annotations

from balancer import LBHScheduler, NodeState, Task, TaskClass

# One idle node in each zone, so every task is dispatched and the order is plain to see.
_NODES = [NodeState("I", 0.0, 0.0), NodeState("II", 0.5, 0.5)]


def _order(tasks: list[Task]) -> list[str]:
    plan = LBHScheduler(0.2, 1.0, delta=0.0).plan(_NODES, tasks)
    assert plan.held == []
    return [task_id for task_id, _ in plan.assignments]


def test_reads_come_before_writes():
    """Every read is dispatched before any write, whatever the arrival order."""
    tasks = [Task("w", TaskClass.DT), Task("r", TaskClass.RT)]
    assert _order(tasks) == ["r", "w"]


def test_reads_oldest_first():
    """Reads go by enqueued_at."""
    tasks = [
        Task("late", TaskClass.RT, enqueued_at=2.0),
        Task("early", TaskClass.RT, enqueued_at=1.0),
    ]
    assert _order(tasks) == ["early", "late"]


def test_equal_ages_keep_input_order():
    """Tasks enqueued at the same time keep their position in the input."""
    tasks = [Task(f"r{i}", TaskClass.RT, enqueued_at=1.0) for i in range(5)]
    assert _order(tasks) == ["r0", "r1", "r2", "r3", "r4"]


def test_writes_by_class_deploy_then_account_then_contract():
    """Writes of different accounts go DT, then MAT, then MCT, regardless of age."""
    tasks = [
        Task("mct", TaskClass.MCT, enqueued_at=0.0),
        Task("mat", TaskClass.MAT, enqueued_at=1.0),
        Task("dt", TaskClass.DT, enqueued_at=2.0),
    ]
    assert _order(tasks) == ["dt", "mat", "mct"]


def test_writes_oldest_first_within_a_class():
    """Two writes of one class go by enqueued_at."""
    tasks = [Task("b", TaskClass.MCT, enqueued_at=5.0), Task("a", TaskClass.MCT, enqueued_at=4.0)]
    assert _order(tasks) == ["a", "b"]


def test_no_write_overtakes_an_older_write_of_its_account():
    """A later deploy of account X waits for X's older contract call."""
    tasks = [
        Task("x-call", TaskClass.MCT, account="X", enqueued_at=0.0),
        Task("x-deploy", TaskClass.DT, account="X", enqueued_at=1.0),
    ]
    assert _order(tasks) == ["x-call", "x-deploy"]


def test_released_write_goes_before_lower_classes():
    """Once its predecessor is placed, a waiting write ranks by its own class again."""
    tasks = [
        Task("x-mct", TaskClass.MCT, account="X", enqueued_at=0.0),
        Task("y-mct", TaskClass.MCT, account="Y", enqueued_at=1.0),
        Task("x-mat", TaskClass.MAT, account="X", enqueued_at=2.0),
        Task("z-mat", TaskClass.MAT, account="Z", enqueued_at=3.0),
    ]
    # z-mat first (the only MAT free to go); x-mct is the oldest MCT; then x-mat outranks y-mct.
    assert _order(tasks) == ["z-mat", "x-mct", "x-mat", "y-mct"]


def test_account_order_uses_age_not_position():
    """An account's older write is the one with the smaller enqueued_at, wherever it sits."""
    tasks = [
        Task("newer", TaskClass.DT, account="X", enqueued_at=2.0),
        Task("older", TaskClass.MCT, account="X", enqueued_at=1.0),
    ]
    assert _order(tasks) == ["older", "newer"]


def test_reads_are_not_bound_by_account_order():
    """A read of an account may go before that account's older write."""
    tasks = [Task("w", TaskClass.MCT, account="X"), Task("r", TaskClass.RT, account="X")]
    assert _order(tasks) == ["r", "w"]
