"""The calibration file with what the bounds were measured under (lbh-spec.md section 2).

A distance is a node's usage against its allotment, so the bounds hold only for the shape and
the machine they were measured on: how many pool nodes, their cores and memory budget, geth's
cache, the runtime, the host's cores and memory, geth's version. The file keeps those inputs and
how the bounds were measured beside the two bounds, and each task class's memory need
(`task_memory_mb`, with how it was measured). The manager reads only the bounds
(`Calibration.from_json`); the providers read the bounds and `task_memory_mb`
(`balancer.task_memory_from_json`).

`why_measure` is the reuse rule `ethgw up` applies: pure, so it is tested without a cluster.
`current_inputs` reads the machine.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from balancer import Calibration
from ethgw_wire.settings import ClusterSettings
from geth_cluster.layout import pool_specs
from geth_cluster.task_memory import TaskMemoryMeasurement

log = logging.getLogger("ethgw.calibrate")


@dataclass(frozen=True)
class CalibrationInputs:
    """The shape and the machine a calibration holds for; any change calls for a new one."""

    nodes: int  # pool nodes measured
    node_cpu_cores: dict[str, float]  # each pool node's allotted cores
    node_memory_budget_mb: float
    geth_cache_mb: int  # what an idle node's memory grows to
    runtime: str  # "process" or "docker"
    host_cores: int  # the cores this process may run on (os.sched_getaffinity)
    host_memory_mb: int
    geth_version: str
    # The process runtime's nodes confined to their allotment (ClusterSettings.process_node_cgroup):
    # a capped node saturates at its cap, an uncapped one at what the host gives it.
    process_node_cgroup: bool = False


@dataclass(frozen=True)
class CalibrationMethod:
    """How the bounds were measured (recorded, not compared: a shorter `ethgw calibrate`
    window is the operator's choice)."""

    measured_at: str  # ISO 8601, UTC
    idle_s: float
    warmup_s: float
    load_s: float
    sample_interval_s: float
    alpha: float
    concurrency: int  # busy loops per pool node
    probe: str  # what the load was
    calls: int  # probe calls completed under the load

    @property
    def measured_on(self) -> str:
        """The date part of `measured_at`."""
        return self.measured_at[:10]


@dataclass(frozen=True)
class CalibrationRecord:
    """The bounds, their inputs and their method, and the classes' memory needs: the
    calibration file's content. `task_memory` is None in a record written before the needs
    were measured."""

    calibration: Calibration
    inputs: CalibrationInputs
    method: CalibrationMethod
    task_memory: TaskMemoryMeasurement | None = None

    def to_json(self) -> str:
        data = {**self.calibration.to_dict(), "inputs": asdict(self.inputs)}
        data["method"] = asdict(self.method)
        data.update(_task_memory_fields(self.task_memory))
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CalibrationRecord:
        """ValueError when the text is not a calibration or lacks its inputs or method."""
        calibration = Calibration.from_json(text)
        data = json.loads(text)
        try:
            inputs = CalibrationInputs(**_known(CalibrationInputs, data["inputs"]))
            method = CalibrationMethod(**_known(CalibrationMethod, data["method"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"calibration without its inputs or method: {error}") from None
        return cls(calibration, inputs, method, _task_memory_of(data))


def _task_memory_fields(measured: TaskMemoryMeasurement | None) -> dict[str, Any]:
    """`task_memory_mb` (what the providers read) and `task_memory_method` (the rest)."""
    if measured is None:
        return {}
    method = asdict(measured)
    return {"task_memory_mb": method.pop("need_mb"), "task_memory_method": method}


def _task_memory_of(data: dict[str, Any]) -> TaskMemoryMeasurement | None:
    """The measured needs of a record's JSON; None when it has none, ValueError when they
    are there without how they were measured."""
    if "task_memory_mb" not in data:
        return None
    try:
        method = _known(TaskMemoryMeasurement, data["task_memory_method"])
        return TaskMemoryMeasurement(need_mb=dict(data["task_memory_mb"]), **method)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"task memory figures without their method: {error}") from None


def _known(kind: type, data: Any) -> dict[str, Any]:
    """`data`'s fields of the dataclass `kind`; a missing one fails in the constructor."""
    if not isinstance(data, dict):
        raise TypeError(f"{kind.__name__} must be an object")
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in data.items() if key in names}


def why_measure(stored: CalibrationRecord | None, current: CalibrationInputs) -> str | None:
    """None when the stored bounds hold for `current`; else why they must be measured again."""
    if stored is None:
        return "no stored calibration with its inputs"
    if stored.task_memory is None:
        return "no stored task memory figures"
    changed = [
        f"{f.name} {getattr(stored.inputs, f.name)!r} -> {getattr(current, f.name)!r}"
        for f in fields(CalibrationInputs)
        if getattr(stored.inputs, f.name) != getattr(current, f.name)
    ]
    return "changed: " + "; ".join(changed) if changed else None


def read_record(path: Path) -> CalibrationRecord | None:
    """The stored record, or None when there is no file or it holds no inputs (a bounds-only
    file from before the inputs were kept, or a damaged one: measuring again replaces it)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return CalibrationRecord.from_json(text)
    except ValueError as error:
        log.warning("calibration record not reusable path=%s reason=%s", path, error)
        return None


def current_inputs(settings: ClusterSettings, runtime: str, geth: Path) -> CalibrationInputs:
    """The inputs of a calibration of this cluster on this machine now."""
    specs = pool_specs(settings)
    return CalibrationInputs(
        nodes=len(specs),
        node_cpu_cores={spec.name: settings.cpu_cores_of(spec.name) for spec in specs},
        node_memory_budget_mb=settings.node_memory_budget_mb,
        geth_cache_mb=settings.geth_cache_mb,
        runtime=runtime,
        host_cores=len(os.sched_getaffinity(0)),
        host_memory_mb=psutil.virtual_memory().total // 2**20,
        geth_version=geth_version(geth),
        process_node_cgroup=settings.process_node_cgroup and runtime == "process",
    )


def geth_version(geth: Path) -> str:
    """`geth version`'s Version line (e.g. 1.13.15-stable); "unknown" without the binary (the
    compose runtime's nodes run an image's geth)."""
    try:
        result = subprocess.run(
            [str(geth), "version"], capture_output=True, text=True, check=False, timeout=30
        )
    except FileNotFoundError:
        return "unknown"
    match = re.search(r"^Version: (\S+)", result.stdout, re.MULTILINE)
    return match.group(1) if match else "unknown"
