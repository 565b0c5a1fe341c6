"""The LBH state-feedback scheduler (lbh-spec.md), lbh_adaptive, the baselines, calibration and
recycling.

Plain data in, plain data out: no I/O, no clock, no logging. `python -m balancer.sim` compares
the strategies on a simulated cluster; `python -m balancer.bench` times `plan()`.
"""

from balancer.adaptive import (
    DEFAULT_HEADROOM_MB,
    AdaptivePolicy,
    AdaptiveSettings,
    AdaptiveState,
    Decision,
    LBHAdaptive,
)
from balancer.calibration import (
    DEFAULT_DIS_AVEMAX,
    MAX_DISTANCE,
    Calibration,
    calibrate,
    mean_distance,
    task_memory_from_json,
    validate_bounds,
)
from balancer.lbh import DEFAULT_DELTA, LBHScheduler, forced_reads
from balancer.plan import Plan, Strategy
from balancer.recycle import DEFAULT_COOLDOWN_S, DEFAULT_RESTART_AFTER, RecyclePolicy, RecycleState
from balancer.state import NodeState, Zone, distance
from balancer.strategies import DEFAULT_STRATEGY, STRATEGY_NAMES, make_strategy
from balancer.tasks import Task, TaskClass

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "DEFAULT_DELTA",
    "DEFAULT_DIS_AVEMAX",
    "DEFAULT_HEADROOM_MB",
    "DEFAULT_RESTART_AFTER",
    "DEFAULT_STRATEGY",
    "MAX_DISTANCE",
    "STRATEGY_NAMES",
    "AdaptivePolicy",
    "AdaptiveSettings",
    "AdaptiveState",
    "Calibration",
    "Decision",
    "LBHAdaptive",
    "LBHScheduler",
    "NodeState",
    "Plan",
    "RecyclePolicy",
    "RecycleState",
    "Strategy",
    "Task",
    "TaskClass",
    "Zone",
    "calibrate",
    "distance",
    "forced_reads",
    "make_strategy",
    "mean_distance",
    "task_memory_from_json",
    "validate_bounds",
]
