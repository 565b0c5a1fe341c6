"""The benchmark runs and prints its tables (timings are printed, never asserted)."""

from __future__ import annotations

from balancer import LBHScheduler
from balancer.bench import MEMORY_MB, main, make_round


def test_quick_benchmark_prints_the_scaling_tables(capsys):
    """`python -m balancer.bench --quick` prints both scaling tables."""
    assert main(["--quick", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "scaling with tasks" in out
    assert "scaling with nodes" in out


def test_benchmark_round_is_healthy_and_seeded():
    """The benchmark's round dispatches (LBH >= 0) and is the same for the same seed."""
    nodes, tasks = make_round(100, 1000)
    plan = LBHScheduler(0.2, 1.0, task_memory_mb=MEMORY_MB).plan(nodes, tasks)
    assert not plan.paused
    assert len(plan.assignments) > 500
    assert make_round(100, 1000) == (nodes, tasks)
