"""`ethgw calibrate`'s measurement on the real session cluster, with short windows (the
session's one calibration, shared with the overload demo: tests/geth_cluster/conftest.py)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest

from balancer import Calibration, TaskClass, task_memory_from_json
from ethgw_wire.artifacts import load_artifact
from geth_cluster.calibrate import (
    BURN_CODE,
    BURN_GAS,
    CalibrationRun,
    cluster_inputs,
    ensure_calibration,
    run_calibration,
)
from geth_cluster.calibration_record import read_record
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import pool_specs
from geth_cluster.node_rpc import rpc_call
from geth_cluster.task_memory import Probes, need_per_task
from tests.geth_cluster.conftest import WINDOWS, SessionCalibration


@pytest.fixture
def calibration_run(session_calibration: SessionCalibration) -> CalibrationRun:
    """The session cluster's one calibration (tests/geth_cluster/conftest.py: WINDOWS)."""
    return session_calibration.run


@pytest.mark.slow
async def test_burner_call_spends_over_a_million_gas(geth_cluster: GethCluster) -> None:
    """The load's eth_call of the count-down init code runs ~1.7M gas of EVM per call."""
    url = pool_specs(geth_cluster.settings)[0].rpc_url
    async with httpx.AsyncClient(timeout=30.0) as http:
        gas = await rpc_call(
            http, url, "eth_estimateGas", [{"data": BURN_CODE, "gas": hex(BURN_GAS)}]
        )
    assert 1_000_000 < int(gas, 16) < BURN_GAS


@pytest.mark.slow
async def test_saturated_mean_distance_is_above_the_idle_one(
    calibration_run: CalibrationRun,
) -> None:
    """Under the burner load the pool nodes' mean d is well above their idle mean d."""
    assert calibration_run.calls > 0
    # Not near 1 on every machine: two nodes on a 2-core host share the cores the load burns.
    assert calibration_run.saturated_mean > 2 * calibration_run.idle_mean


@pytest.mark.slow
async def test_calibration_file_is_written_and_valid(calibration_run: CalibrationRun) -> None:
    """The file at the given path parses as the calibration that was measured."""
    text = calibration_run.path.read_text()
    assert Calibration.from_json(text) == calibration_run.calibration
    assert not calibration_run.path.with_name("calibration.json.tmp").exists()


@pytest.mark.slow
async def test_samples_cover_every_pool_node_in_each_window(
    geth_cluster: GethCluster, calibration_run: CalibrationRun
) -> None:
    """Each window holds one sample per pool node per interval (4 s and 5 s, 1 s apart)."""
    nodes = len(pool_specs(geth_cluster.settings))
    assert len(calibration_run.idle) == 4 * nodes
    assert len(calibration_run.saturated) == 5 * nodes


@pytest.mark.slow
async def test_invalid_windows_are_refused(geth_cluster: GethCluster, tmp_path: Path) -> None:
    """A window of zero seconds is refused before anything is measured."""
    with pytest.raises(ValueError, match="windows"):
        await run_calibration(geth_cluster, idle_s=0.0, path=tmp_path / "c.json")


@pytest.mark.slow
async def test_the_file_keeps_the_inputs_and_the_method(
    geth_cluster: GethCluster, calibration_run: CalibrationRun
) -> None:
    """The written record holds the cluster's inputs and the windows it was measured with."""
    record = read_record(calibration_run.path)
    assert record is not None
    assert record.inputs == await asyncio.to_thread(cluster_inputs, geth_cluster)
    assert (record.method.idle_s, record.method.load_s) == (WINDOWS.idle_s, WINDOWS.load_s)
    assert record.method.calls == calibration_run.calls


@pytest.mark.slow
async def test_progress_is_reported_through_each_window(
    session_calibration: SessionCalibration,
) -> None:
    """The callback hears every window in order and ends each at its full length."""
    last: dict[str, tuple[float, float]] = {}
    for window, done, total in session_calibration.progress:
        last[window] = (done, total)
    assert list(last) == ["idle", "task RT", "task MAT", "task MCT", "task DT", "warm-up", "load"]
    assert all(done == pytest.approx(total) for done, total in last.values())


@pytest.mark.slow
async def test_a_record_of_this_cluster_is_reused_without_measuring(
    geth_cluster: GethCluster, calibration_run: CalibrationRun
) -> None:
    """`ensure_calibration` on a record of the same inputs returns it at once, file untouched."""
    before = calibration_run.path.stat().st_mtime_ns
    loop = asyncio.get_running_loop()
    started = loop.time()
    ensured = await ensure_calibration(geth_cluster, calibration_run.path)
    assert not ensured.measured_now
    assert ensured.record.calibration == calibration_run.calibration
    assert loop.time() - started < 2.0
    assert calibration_run.path.stat().st_mtime_ns == before


@pytest.mark.slow
async def test_every_task_class_has_a_measured_memory_need(
    calibration_run: CalibrationRun,
) -> None:
    """Each class's need is a finite figure >= 0, from a burst whose probes the nodes answered."""
    measured = calibration_run.task_memory
    assert set(measured.table()) == set(TaskClass)
    assert all(math.isfinite(mb) and mb >= 0.0 for mb in measured.need_mb.values())
    assert all(calls > 0 for calls in measured.calls.values())
    assert measured.concurrency == WINDOWS.task_concurrency


@pytest.mark.slow
async def test_the_needs_reach_the_file_the_providers_read(
    calibration_run: CalibrationRun,
) -> None:
    """The calibration file holds the needs as the providers read them."""
    text = calibration_run.path.read_text()
    assert task_memory_from_json(text) == calibration_run.task_memory.table()


@pytest.mark.slow
async def test_each_probe_is_answered_by_a_node(geth_cluster: GethCluster) -> None:
    """Every class's probe calls (the state-overridden token call included) succeed on a node."""
    probes = Probes(geth_cluster.accounts.faucet.address, load_artifact("PlatformToken"))
    url = pool_specs(geth_cluster.settings)[0].rpc_url
    async with httpx.AsyncClient(timeout=30.0) as http:
        for cls in TaskClass:
            for method, params in probes.calls(cls):
                await rpc_call(http, url, method, params)
        publish_gas = await rpc_call(http, url, *probes.calls(TaskClass.MCT)[-1])
    assert int(publish_gas, 16) > 50_000  # the token's publishProject ran, storage writes and all


def test_need_per_task_is_the_mean_growth_over_the_concurrency() -> None:
    """(peak - baseline) per node, averaged, over the concurrency; a shrinking node counts 0."""
    assert need_per_task([50.0, 60.0], [58.0, 56.0], concurrency=4) == 1.0
