"""The worked example of lbh-spec.md section 10, both variants, exactly."""

from __future__ import annotations

import pytest

from balancer import LBHScheduler, NodeState, Task, TaskClass, Zone


@pytest.fixture
def scheduler() -> LBHScheduler:
    return LBHScheduler(dis_avemin=0.2, dis_avemax=1.0, delta=0.05, task_memory_mb={})


@pytest.fixture
def tasks() -> list[Task]:
    return [
        Task("w1", TaskClass.MCT, account="X"),
        Task("r1", TaskClass.RT),
        Task("w2", TaskClass.DT, account="Y"),
        Task("w3", TaskClass.MAT, account="X"),
        Task("r2", TaskClass.RT),
    ]


def _nodes(c_state: tuple[float, float]) -> list[NodeState]:
    return [NodeState("A", 0.1, 0.1), NodeState("B", 0.4, 0.5), NodeState("C", *c_state)]


def test_zones_of_the_example(scheduler, tasks):
    """A and C are in zone I, B in zone II."""
    plan = scheduler.plan(_nodes((0.2, 0.3)), tasks)
    assert plan.zones == {"A": Zone.I, "B": Zone.II, "C": Zone.I}


def test_health_of_the_example(scheduler, tasks):
    """LBH = 0.459 - 0.040 + 0.239 = 0.658, so the round is not paused."""
    plan = scheduler.plan(_nodes((0.2, 0.3)), tasks)
    assert plan.lbh == pytest.approx(0.658, abs=5e-4)
    assert plan.paused is False
    assert plan.recycle == []


def test_assignments_of_the_example(scheduler, tasks):
    """Reads to B, then w2, w1, w3 (w1 before w3, same account) to A; nothing held."""
    plan = scheduler.plan(_nodes((0.2, 0.3)), tasks)
    assert plan.assignments == [("r1", "B"), ("r2", "B"), ("w2", "A"), ("w1", "A"), ("w3", "A")]
    assert plan.held == []


def test_second_variant_pauses(scheduler, tasks):
    """With C at (0.8, 0.8), LBH = -0.112: nothing dispatched, everything held, C to recycle."""
    plan = scheduler.plan(_nodes((0.8, 0.8)), tasks)
    # The spec adds terms rounded to three places (0.459 - 0.040 - 0.531); unrounded: -0.1131.
    assert plan.lbh == pytest.approx(-0.112, abs=2e-3)
    assert plan.paused is True
    assert plan.assignments == []
    assert plan.held == ["w1", "r1", "w2", "w3", "r2"]
    assert plan.zones["C"] is Zone.III
    assert plan.recycle == ["C"]
