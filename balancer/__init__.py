"""The LBH state-feedback scheduler (lbh-spec.md), its baselines, calibration and recycling.

Plain data in, plain data out: no I/O, no clock, no logging. `balancer.sim` simulates a
cluster to compare the strategies; `python -m balancer.bench` times `plan()`.
"""

from balancer.calibration import (
    DEFAULT_DIS_AVEMAX,
    MAX_DISTANCE,
    Calibration,
    calibrate,
    mean_distance,
    validate_bounds,
)
from balancer.lbh import DEFAULT_DELTA, LBHScheduler
from balancer.plan import Plan, Strategy
from balancer.state import NodeState, Zone, distance
from balancer.tasks import Task, TaskClass

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_DIS_AVEMAX",
    "MAX_DISTANCE",
    "Calibration",
    "LBHScheduler",
    "NodeState",
    "Plan",
    "Strategy",
    "Task",
    "TaskClass",
    "Zone",
    "calibrate",
    "distance",
    "mean_distance",
    "validate_bounds",
]
