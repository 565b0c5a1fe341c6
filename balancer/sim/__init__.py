"""A discrete-event simulation of the cluster to compare LBH with the baselines.

`python -m balancer.sim` runs every strategy on the same trace per scenario and writes a CSV and
a PNG; `make_scenario` and `run` / `compare` are the pure functions underneath.
"""

from balancer.sim.engine import (
    DEFAULT_RUNS,
    RunResult,
    RunSpec,
    Scenario,
    Second,
    SimConfig,
    compare,
    make_scenario,
    run,
)
from balancer.sim.node import NodeModel
from balancer.sim.workload import KINDS, TASK_MEMORY_MB, Arrival, Kind, make_trace

__all__ = [
    "DEFAULT_RUNS",
    "KINDS",
    "TASK_MEMORY_MB",
    "Arrival",
    "Kind",
    "NodeModel",
    "RunResult",
    "RunSpec",
    "Scenario",
    "Second",
    "SimConfig",
    "compare",
    "make_scenario",
    "make_trace",
    "run",
]
