"""The calibration record: its file round-trips, and the rule that reuses or re-measures it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from balancer import Calibration, TaskClass, task_memory_from_json
from ethgw_wire.settings import ClusterSettings
from geth_cluster.calibrate import EnsuredCalibration, _Sampling
from geth_cluster.calibration_record import (
    CalibrationInputs,
    CalibrationMethod,
    CalibrationRecord,
    current_inputs,
    geth_version,
    read_record,
    why_measure,
)
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import NodeSpec, pool_specs
from geth_cluster.task_memory import TaskMemoryMeasurement
from geth_cluster.toolchain import geth_binary

INPUTS = CalibrationInputs(
    nodes=3,
    node_cpu_cores={"node-1": 1.0, "node-2": 1.0, "node-3": 1.0},
    node_memory_budget_mb=1024.0,
    geth_cache_mb=128,
    runtime="process",
    host_cores=2,
    host_memory_mb=7936,
    geth_version="1.13.15-stable",
)
METHOD = CalibrationMethod(
    measured_at="2026-12-06T10:00:00+00:00",
    idle_s=10.0,
    warmup_s=3.0,
    load_s=10.0,
    sample_interval_s=1.0,
    alpha=0.5,
    concurrency=4,
    probe="eth_call burner",
    calls=120,
)
TASK_MEMORY = TaskMemoryMeasurement(
    need_mb={"RT": 0.31, "DT": 1.21, "MAT": 0.58, "MCT": 1.19},
    baseline_mb=[53.1, 54.5],
    peak_mb={"RT": [55.6, 56.7], "DT": [62.8, 63.1], "MAT": [57.7, 60.1], "MCT": [62.6, 63.8]},
    concurrency=8,
    burst_s=3.0,
    interval_s=0.5,
    calls={"RT": 466, "DT": 1015, "MAT": 392, "MCT": 893},
)
RECORD = CalibrationRecord(Calibration(0.055, 0.52), INPUTS, METHOD, TASK_MEMORY)


def test_the_same_inputs_reuse_the_stored_bounds() -> None:
    """Inputs equal to the stored ones: nothing to measure."""
    assert why_measure(RECORD, dataclasses.replace(INPUTS)) is None


def test_without_a_record_the_bounds_are_measured() -> None:
    """No stored record: measure."""
    assert why_measure(None, INPUTS) == "no stored calibration with its inputs"


def test_another_node_count_is_measured_again() -> None:
    """Four pool nodes instead of three: measure again, naming the change."""
    four = dataclasses.replace(INPUTS, nodes=4, node_cpu_cores={**INPUTS.node_cpu_cores, "n4": 1})
    reason = why_measure(RECORD, four)
    assert "nodes 3 -> 4" in str(reason)


def test_other_cores_per_node_are_measured_again() -> None:
    """Half a core per node instead of one: measure again."""
    halves = {name: 0.5 for name in INPUTS.node_cpu_cores}
    reason = why_measure(RECORD, dataclasses.replace(INPUTS, node_cpu_cores=halves))
    assert str(reason).startswith("changed: node_cpu_cores")


def test_another_geth_version_is_measured_again() -> None:
    """A new geth: measure again."""
    newer = dataclasses.replace(INPUTS, geth_version="1.14.0-stable")
    reason = why_measure(RECORD, newer)
    assert reason == "changed: geth_version '1.13.15-stable' -> '1.14.0-stable'"


def test_another_host_is_measured_again() -> None:
    """Fewer host cores (the same shape on a smaller machine): measure again."""
    assert why_measure(RECORD, dataclasses.replace(INPUTS, host_cores=1)) is not None


def test_confining_the_nodes_is_measured_again() -> None:
    """The same shape with its nodes now confined to their cores (node-bound): measure again."""
    confined = dataclasses.replace(INPUTS, process_node_cgroup=True)
    assert why_measure(RECORD, confined) == "changed: process_node_cgroup False -> True"


def test_a_record_from_before_confinement_reads_as_unconfined(tmp_path: Path) -> None:
    """A stored record without process_node_cgroup is an unconfined one, still reused."""
    data = json.loads(RECORD.to_json())
    del data["inputs"]["process_node_cgroup"]
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    stored = read_record(path)
    assert stored is not None
    assert why_measure(stored, INPUTS) is None


def test_the_inputs_say_whether_the_process_runtime_confines_its_nodes(tmp_path: Path) -> None:
    """process_node_cgroup is recorded for the process runtime (the docker one always limits)."""
    settings = ClusterSettings(state_dir=tmp_path, process_node_cgroup=True)
    assert current_inputs(settings, "process", tmp_path / "geth").process_node_cgroup
    assert not current_inputs(settings, "docker", tmp_path / "geth").process_node_cgroup


def test_the_record_round_trips_through_its_file(tmp_path: Path) -> None:
    """A record written as JSON reads back equal, bounds, inputs and method."""
    path = tmp_path / "calibration.json"
    path.write_text(RECORD.to_json())
    assert read_record(path) == RECORD


def test_a_record_without_task_memory_figures_is_measured_again() -> None:
    """A record written before the classes' memory needs were measured is not reused."""
    older = dataclasses.replace(RECORD, task_memory=None)
    assert why_measure(older, INPUTS) == "no stored task memory figures"


def test_a_record_without_task_memory_reads_back_without_it(tmp_path: Path) -> None:
    """An older record (no task_memory_mb) still reads, with task_memory None."""
    path = tmp_path / "calibration.json"
    path.write_text(dataclasses.replace(RECORD, task_memory=None).to_json())
    record = read_record(path)
    assert record is not None
    assert record.task_memory is None


def test_task_memory_figures_without_their_method_are_refused(tmp_path: Path) -> None:
    """task_memory_mb without task_memory_method is a damaged record: measured again."""
    path = tmp_path / "calibration.json"
    data = json.loads(RECORD.to_json())
    del data["task_memory_method"]
    path.write_text(json.dumps(data))
    assert read_record(path) is None


def test_the_providers_read_the_needs_from_the_record() -> None:
    """`task_memory_from_json` (the providers' reader) finds each class's need in the record."""
    assert task_memory_from_json(RECORD.to_json()) == {
        TaskClass.RT: 0.31,
        TaskClass.DT: 1.21,
        TaskClass.MAT: 0.58,
        TaskClass.MCT: 1.19,
    }


def test_bounds_only_readers_still_read_the_record() -> None:
    """`Calibration.from_json` (the manager's and the providers' reader) takes the record."""
    assert Calibration.from_json(RECORD.to_json()) == Calibration(0.055, 0.52)


def test_a_bounds_only_file_is_not_reused(tmp_path: Path) -> None:
    """A file with the two bounds and no inputs gives no record, so it is measured again."""
    path = tmp_path / "calibration.json"
    path.write_text(Calibration(0.05, 0.5).to_json())
    assert read_record(path) is None


def test_a_missing_file_gives_no_record(tmp_path: Path) -> None:
    """No file: no record."""
    assert read_record(tmp_path / "calibration.json") is None


def test_current_inputs_describe_the_pool_and_this_machine(tmp_path: Path) -> None:
    """Pool nodes, their cores, the runtime, the cores this process may use, geth's version."""
    settings = ClusterSettings(state_dir=tmp_path, nodes=2, node_cpu_cores_by_node={"node-1": 0.25})
    inputs = current_inputs(settings, "docker", geth_binary())
    assert inputs.nodes == 2
    assert inputs.node_cpu_cores == {"node-1": 0.25, "node-2": 1.0}
    assert inputs.runtime == "docker"
    assert inputs.host_cores == len(os.sched_getaffinity(0))
    assert inputs.geth_version.startswith("1.")


def test_a_missing_geth_has_an_unknown_version(tmp_path: Path) -> None:
    """Without the binary (the compose runtime's image geth) the version is "unknown"."""
    assert geth_version(tmp_path / "geth") == "unknown"


def test_a_reused_calibration_says_when_it_was_measured(tmp_path: Path) -> None:
    """The start-up line of reused bounds gives them and the day they were measured."""
    ensured = EnsuredCalibration(RECORD, tmp_path, measured_now=False, reason=None)
    assert ensured.describe() == (
        "Dis_avemin=0.0550 Dis_avemax=0.5200; RT=0.31 DT=1.21 MAT=0.58 MCT=1.19 MB per task: "
        "reused, measured on 2026-12-06"
    )


def test_a_new_calibration_says_why_it_was_measured(tmp_path: Path) -> None:
    """The start-up line of fresh bounds says they were measured now, and why."""
    reason = "changed: nodes 2 -> 3"
    ensured = EnsuredCalibration(RECORD, tmp_path, measured_now=True, reason=reason)
    assert ensured.describe().endswith(f": measured now ({reason})")


async def test_calibration_samples_each_node_against_its_own_cores(tmp_path: Path) -> None:
    """A node with cores of its own (the slowed node, a confined one) is sampled against them,
    as the manager samples it, not against the cluster-wide figure."""
    settings = ClusterSettings(state_dir=tmp_path, nodes=2, node_cpu_cores_by_node={"node-1": 0.05})
    asked: dict[str, float] = {}

    def sampler(spec: NodeSpec, memory_budget_mb: float, cpu_cores: float) -> object:
        asked[spec.name] = cpu_cores
        return object()

    cluster = SimpleNamespace(settings=settings, runtime=SimpleNamespace(sampler=sampler))
    _Sampling(cast(GethCluster, cluster), pool_specs(settings), 0.5, None)
    assert asked == {"node-1": 0.05, "node-2": 1.0}
