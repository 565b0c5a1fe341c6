"""`ethgw calibrate`'s measurement on the real session cluster, with short windows."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from balancer import Calibration
from geth_cluster.calibrate import BURN_CODE, BURN_GAS, CalibrationRun, run_calibration
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import pool_specs
from geth_cluster.node_rpc import rpc_call
from tests.geth_cluster.test_manager import wait_following


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def calibration_run(
    geth_cluster: GethCluster, tmp_path_factory: pytest.TempPathFactory
) -> CalibrationRun:
    """One calibration of the session cluster: 3 s idle, 1 s warm-up, 3 s saturated."""
    await wait_following(geth_cluster)
    try:
        return await run_calibration(
            geth_cluster,
            idle_s=3.0,
            warmup_s=1.0,
            load_s=3.0,
            sample_interval_s=0.5,
            path=tmp_path_factory.mktemp("calibrate") / "state" / "calibration.json",
        )
    finally:
        await wait_following(geth_cluster, 60.0)


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
    """Each window holds one sample per pool node per interval (3 s / 0.5 s = 6 intervals)."""
    nodes = len(pool_specs(geth_cluster.settings))
    assert len(calibration_run.idle) == 6 * nodes
    assert len(calibration_run.saturated) == 6 * nodes


@pytest.mark.slow
async def test_invalid_windows_are_refused(geth_cluster: GethCluster, tmp_path: Path) -> None:
    """A window of zero seconds is refused before anything is measured."""
    with pytest.raises(ValueError, match="windows"):
        await run_calibration(geth_cluster, idle_s=0.0, path=tmp_path / "c.json")
