"""The core of `ethgw demo overload` on real servers: a node saturated by direct heavy eth_calls
is seen in zone III and recycled by a manager on its default settings, with bounds calibrated
as `ethgw up` calibrates them (shorter windows: the session's one calibration, shared with
tests/geth_cluster/test_calibrate.py), while reads and writes through the gateway
keep succeeding.

The stack: the session's Geth cluster (a sealer and two pool nodes) and Kafka broker, a
provider on topics of its own reading the calibration file, the manager and its operator API
in this process (`serve_api`, as `ethgw up` runs it), a gateway, a read and a write instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devstack.kafka_broker import KafkaBroker
from geth_cluster.api import serve_api
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from loadtests.overload import (
    OverloadPlan,
    OverloadReport,
    StackEndpoints,
    report_lines,
    stage_overload,
)
from service_kit.ports import free_port
from tests.geth_cluster.conftest import SessionCalibration
from tests.geth_cluster.episode_chart import RESULTS_DIR
from tests.geth_cluster.test_manager import ensure_following, wait_following
from tests.geth_cluster.test_recycling_under_load import answers, poll_until
from tests.pipeline_fixtures import (
    IsolatedPipeline,
    ProviderProcess,
    ServerProcess,
    create_topics,
    start_front_door_beside,
    stop_all,
)

pytestmark = pytest.mark.slow

NODE = "node-2"
EVENTS_TOPIC = "ethgw.test.overload.events"
RECYCLE_STEPS = ["draining", "restarting", "syncing", "up"]
# A light steady load: on a loaded 2-core host every busy process of the stack takes CPU from
# the burned node, which must outrun the saturated distance calibrated with every node burned.
PLAN = OverloadPlan(
    node=NODE,
    warmup_s=8.0,
    timeout_s=80.0,
    tail_s=2.0,
    readers=1,
    writers=1,
    pause_s=0.2,
    progress_s=5.0,
)


@contextlib.asynccontextmanager
async def manager_serving(
    cluster: GethCluster, pipeline: IsolatedPipeline, settings: ManagerSettings
) -> AsyncIterator[str]:
    """The manager and its API as `ethgw up` runs them, on the pipeline's topics."""
    kafka = pipeline.settings.model_copy(update={"topic_events": EVENTS_TOPIC})
    await create_topics(kafka, {EVENTS_TOPIC: 1})
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_api(cluster, kafka, settings, stop))
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        await poll_until(lambda: answers(f"{url}/healthz"), 30.0, "the manager's API")
        yield url
    finally:
        stop.set()
        await serving


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def overload_report(
    geth_cluster: GethCluster,
    kafka_broker: KafkaBroker,
    session_calibration: SessionCalibration,
    platform_file: Path,
    provider_log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[OverloadReport]:
    """The demo's run against the stack, node-2 saturated."""
    from gateway.keys import create_key

    work = tmp_path_factory.mktemp("overload")
    calibration = session_calibration.run
    await ensure_following(geth_cluster, 60.0)
    pipeline = IsolatedPipeline(
        "overload",
        geth_cluster,
        platform_file,
        provider_log_dir,
        1,
        ETHGW_LBH_CALIBRATION_FILE=str(calibration.path),
    )
    await pipeline.create_topics()
    admin_key = create_key(work, "overload-admin", "admin")
    processes: list[ServerProcess] = []
    try:
        # The provider waits for node states to be ready: it starts once the manager runs.
        provider = ProviderProcess(pipeline.env, provider_log_dir, "overload-p1")
        pipeline.providers.append(provider)
        # Nothing but where things are: every rule of the manager keeps its default.
        settings = ManagerSettings(
            calibration_file=calibration.path, provider_urls=(provider.url,), api_port=free_port()
        )
        async with manager_serving(geth_cluster, pipeline, settings) as manager_url:
            provider.start()
            processes = await start_front_door_beside(
                provider.wait_ready(),
                pipeline,
                work,
                provider_log_dir,
                "overload",
                ETHGW_GATEWAY_MANAGER_URL=manager_url,
            )
            endpoints = StackEndpoints(
                processes[0].url,
                admin_key,
                manager_url,
                (provider.url,),
                {spec.name: spec.rpc_url for spec in geth_cluster.specs if not spec.is_sealer},
            )
            lines: list[str] = []
            report = await stage_overload(endpoints, PLAN, lines.append, work / "demo")
            RESULTS_DIR.mkdir(exist_ok=True)
            (RESULTS_DIR / "overload-demo.txt").write_text("\n".join(lines + report_lines(report)))
            yield report
    finally:
        stop_all([*processes, *pipeline.providers])
        await wait_following(geth_cluster, 60.0)


async def test_saturated_node_is_seen_in_zone_iii(overload_report: OverloadReport) -> None:
    """The manager puts the node the demo burns in zone III, with the calibrated bounds."""
    assert overload_report.reached_zone3, report_lines(overload_report)


async def test_saturated_node_is_recycled_by_the_manager(overload_report: OverloadReport) -> None:
    """The manager, on its default settings, drains, restarts and re-admits the node (zone3)."""
    events = [e for e in overload_report.events if e["node"] == NODE]
    assert [e["kind"] for e in events] == RECYCLE_STEPS, events
    assert {e["reason"] for e in events} == {"zone3"}


async def test_recycled_node_comes_back_in_service(overload_report: OverloadReport) -> None:
    """After its restart the node is UP in zone I or II again, and the demo's verdict is ok."""
    assert overload_report.came_back, report_lines(overload_report)
    assert overload_report.ok
    assert overload_report.burner.cut > 0  # the restart ended the runaway client's loops


async def test_gateway_reads_and_writes_keep_succeeding(overload_report: OverloadReport) -> None:
    """Every read and write of the steady load through the gateway succeeds throughout."""
    reads, writes = overload_report.answered("read"), overload_report.answered("write")
    assert reads[1] == 0, [c for c in overload_report.calls if not c.ok]
    assert writes[1] == 0, [c for c in overload_report.calls if not (c.ok or c.accepted)]
    assert reads[0] > 0
    assert writes[0] > 0


async def test_no_task_is_dispatched_to_a_zone_iii_node(overload_report: OverloadReport) -> None:
    """The provider's per-zone counts: tasks went out during the overload, none to zone III."""
    during = overload_report.dispatched_during
    assert sum(during.values()) > 0
    assert {key: n for key, n in during.items() if key[1] == "III"} == {}
