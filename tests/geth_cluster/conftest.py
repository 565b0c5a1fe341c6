"""One calibration of the session cluster for every module that needs one: the calibration's
own tests (tests/geth_cluster/test_calibrate.py) and the overload demo
(tests/geth_cluster/test_overload_demo.py), which runs its manager on these bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from geth_cluster.calibrate import CalibrationRun, run_calibration
from geth_cluster.cluster import GethCluster
from tests.geth_cluster.test_manager import ensure_following


@dataclass(frozen=True)
class Windows:
    """The windows of the session's calibration: shorter than `ethgw calibrate`'s defaults,
    long enough that the overload demo's burned node reliably outruns the saturated bound."""

    idle_s: float = 4.0
    warmup_s: float = 2.0
    load_s: float = 5.0
    sample_interval_s: float = 1.0
    task_burst_s: float = 3.0
    task_concurrency: int = 8


WINDOWS = Windows()


@dataclass
class SessionCalibration:
    """The calibration run and every progress call it made, in order."""

    run: CalibrationRun
    progress: list[tuple[str, float, float]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_calibration(
    geth_cluster: GethCluster, tmp_path_factory: pytest.TempPathFactory
) -> SessionCalibration:
    """The session cluster calibrated once (WINDOWS), its record in a folder of its own."""
    progress: list[tuple[str, float, float]] = []
    await ensure_following(geth_cluster, 60.0)
    try:
        run = await run_calibration(
            geth_cluster,
            idle_s=WINDOWS.idle_s,
            warmup_s=WINDOWS.warmup_s,
            load_s=WINDOWS.load_s,
            sample_interval_s=WINDOWS.sample_interval_s,
            path=tmp_path_factory.mktemp("calibrate") / "state" / "calibration.json",
            progress=lambda *step: progress.append(step),
            task_burst_s=WINDOWS.task_burst_s,
            task_concurrency=WINDOWS.task_concurrency,
        )
    finally:
        await ensure_following(geth_cluster, 60.0)
    return SessionCalibration(run, progress)
