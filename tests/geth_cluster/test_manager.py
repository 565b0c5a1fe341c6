"""The cluster manager: node states on Kafka, the DOWN rule, cordons, zones and LBH.

The slow tests run the manager against the session's real Geth cluster and real Kafka broker
(run this module alone with `-p tests.kafka_fixtures`). Every test leaves all nodes running.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from balancer import Calibration, Zone, distance
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import decode, kafka_consumer
from ethgw_wire.node_reports import Lifecycle, NodeReport
from ethgw_wire.request_auth import signing_auth
from ethgw_wire.settings import KafkaSettings
from geth_cluster.api import create_app, serve_api
from geth_cluster.cluster import GethCluster
from geth_cluster.config import CalibrationFileError, ManagerSettings, load_calibration
from geth_cluster.errors import UnknownNodeError
from geth_cluster.layout import pool_specs
from geth_cluster.manager import (
    ClusterManager,
    down_reason,
    effective_lifecycle,
    open_manager,
    run_manager,
)
from geth_cluster.node_rpc import ChainPosition, chain_position
from geth_cluster.snapshot import DownReason
from service_kit.ports import PortInUseError, free_port

FROZEN_INTERVAL_S = 60.0


def fast(**overrides: Any) -> ManagerSettings:
    """Four ticks a second, so a state change shows within a fraction of a second."""
    return ManagerSettings(sample_interval_s=0.25, rpc_timeout_s=0.25, **overrides)


def frozen(**overrides: Any) -> ManagerSettings:
    """A tick every minute: within a test only the first tick (on start) and explicit
    `tick()` calls happen, so a state that arrives quickly was published at once."""
    return ManagerSettings(sample_interval_s=FROZEN_INTERVAL_S, **overrides)


# -- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStates:
    """Reports of this session's cluster read from the node-states topic.

    Reports of other clusters are skipped: on a machine shared by several test sessions a
    foreign publisher can reach this broker, and node ids repeat between clusters; the RPC
    addresses do not.
    """

    consumer: AIOKafkaConsumer
    rpc_urls: frozenset[str]

    async def next(self, predicate: Callable[[NodeReport], bool], timeout_s: float) -> NodeReport:
        """The first report from now on that satisfies `predicate`."""
        async with asyncio.timeout(timeout_s):
            while True:
                batches = await self.consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        report = decode(NodeReport, record.value)
                        if report.rpc_url not in self.rpc_urls:
                            continue
                        assert record.key == report.node_id.encode()
                        if predicate(report):
                            return report


@asynccontextmanager
async def node_states(kafka: KafkaSettings, cluster: GethCluster) -> AsyncIterator[NodeStates]:
    """The node-states topic from its current end on (only reports published from now)."""
    async with kafka_consumer(kafka, group_id=None) as consumer:
        partition = TopicPartition(kafka.topic_node_states, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.position(partition)  # resolve the end now, before anything is published
        yield NodeStates(consumer, frozenset(spec.rpc_url for spec in cluster.specs))


def is_(node: str, lifecycle: Lifecycle) -> Callable[[NodeReport], bool]:
    return lambda r: r.node_id == node and r.lifecycle is lifecycle


@asynccontextmanager
async def manager(
    cluster: GethCluster, kafka: KafkaBroker, settings: ManagerSettings
) -> AsyncIterator[ClusterManager]:
    """A running manager publishing to the session broker."""
    async with open_manager(cluster, kafka.settings, settings) as running:
        yield running


# The processes of each cluster's nodes when wait_following last saw all of them follow.
_FOLLOWING: weakref.WeakKeyDictionary[GethCluster, dict[str, int | None]] = (
    weakref.WeakKeyDictionary()
)


def _processes(cluster: GethCluster) -> dict[str, int | None]:
    return {spec.name: cluster.runtime.pid(spec) for spec in cluster.specs}


async def wait_following(cluster: GethCluster, timeout_s: float = 30.0) -> None:
    """Until every node has imported a block sealed after this call.

    After a restart geth drops propagated blocks until its first sync, which its 10 s
    forced-sync cycle may delay: `start_node` can return while the node is near the head and
    the node then falls behind for a few seconds, which the manager rightly calls DOWN.
    """
    processes = _processes(cluster)
    heads = await cluster.heads()
    target = max(h for h in heads.values() if h is not None) + 1
    async with asyncio.timeout(timeout_s):
        while True:
            if all(h is not None and h >= target for h in (await cluster.heads()).values()):
                break
            await asyncio.sleep(0.25)
    if _processes(cluster) == processes:
        _FOLLOWING[cluster] = processes


async def still_following(cluster: GethCluster) -> bool:
    """Whether the cluster is as wait_following last left it: the same processes (a restarted
    node may fall behind again, see wait_following), the sealer sealing, every node at one
    head and every service node's pending state past it (a node that caught up by a sync
    keeps a stale one until its next new head, and a manager's first tick calls it DOWN).
    A block landing between the reads only costs a wait_following."""
    if _FOLLOWING.get(cluster) != _processes(cluster):
        return False
    if not (await cluster.mining_state()).mining:
        return False
    async with httpx.AsyncClient(timeout=3.0) as client:
        answers = await asyncio.gather(
            *(chain_position(client, spec.rpc_url) for spec in cluster.specs),
            return_exceptions=True,
        )
    positions = [a for a in answers if isinstance(a, ChainPosition)]
    if len(positions) < len(answers):  # a node that does not answer is not following
        return False
    heads = {position.head for position in positions}
    stale = any(
        position.pending_is_stale
        for spec, position in zip(cluster.specs, positions, strict=True)
        if not spec.is_sealer
    )
    return len(heads) == 1 and not stale


async def ensure_following(cluster: GethCluster, timeout_s: float = 30.0) -> None:
    """wait_following, unless the cluster still follows since the last one (about a block
    period saved for each test that disturbed nothing)."""
    if not await still_following(cluster):
        await wait_following(cluster, timeout_s)


async def restore(cluster: GethCluster, name: str) -> None:
    """Leave the shared cluster as the other tests expect it: every node running and following."""
    if not await cluster.runtime.is_running(cluster.spec(name)):
        await cluster.start_node(name)
    await wait_following(cluster)


@pytest.fixture
async def cluster(geth_cluster: GethCluster) -> GethCluster:
    """The session cluster once every node follows the head (an earlier test may have
    restarted one that is still waiting for its first sync)."""
    await ensure_following(geth_cluster)
    return geth_cluster


# -- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "sampled", "block", "head", "expected"),
    [
        (True, True, 100, 100, None),
        (True, True, 97, 100, None),  # exactly max_lag behind: still up
        (True, True, 96, 100, DownReason.LAG),
        (True, True, None, 100, DownReason.RPC),
        (True, False, 100, 100, DownReason.SAMPLER),
        (False, False, None, 100, DownReason.PROCESS),
        (True, True, 5, None, None),  # no head known: nothing to lag behind
    ],
)
def test_down_reason_follows_the_spec_rule(
    running: bool, sampled: bool, block: int | None, head: int | None, expected: DownReason | None
) -> None:
    """DOWN when not running, not sampled, silent over RPC or more than max_lag behind."""
    got = down_reason(running=running, sampled=sampled, block=block, head=head, max_lag=3)
    assert got == expected


@pytest.mark.parametrize(
    ("returning", "pending_is_stale", "expected"),
    [
        (True, True, DownReason.STALE_PENDING),  # just caught up: pending still on the old head
        (True, False, None),
        (False, True, None),  # an UP node between a block's import and its pending rebuild
        (False, False, None),
    ],
)
def test_returning_node_waits_for_a_fresh_pending_state(
    returning: bool, pending_is_stale: bool, expected: DownReason | None
) -> None:
    """A node coming back at the head stays DOWN until its pending state is past its head."""
    got = down_reason(
        running=True,
        sampled=True,
        block=100,
        head=100,
        max_lag=3,
        returning=returning,
        pending_is_stale=pending_is_stale,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("down", "cordoned", "recycling", "expected"),
    [
        (None, False, None, Lifecycle.UP),
        (None, True, None, Lifecycle.CORDONED),
        (DownReason.RPC, True, None, Lifecycle.DOWN),
        (DownReason.PROCESS, False, Lifecycle.RESTARTING, Lifecycle.RESTARTING),
        (None, True, Lifecycle.DRAINING, Lifecycle.DRAINING),
    ],
)
def test_published_lifecycle_ranks_recycling_then_health_then_cordon(
    down: DownReason | None, cordoned: bool, recycling: Lifecycle | None, expected: Lifecycle
) -> None:
    """A recycle step wins over DOWN, DOWN wins over a cordon, a healthy uncordoned node is UP."""
    assert effective_lifecycle(down, cordoned=cordoned, recycling=recycling) is expected


def test_settings_refuse_bounds_outside_the_spec() -> None:
    """Start-up refuses dis_avemin >= dis_avemax (lbh-spec.md section 2)."""
    with pytest.raises(ValidationError, match="dis_avemin must be < dis_avemax"):
        ManagerSettings(dis_avemin=0.8, dis_avemax=0.5)


def test_settings_refuse_an_rpc_timeout_longer_than_the_interval() -> None:
    """A tick whose RPC bound exceeds the interval could never keep the rhythm."""
    with pytest.raises(ValidationError, match="rpc_timeout_s"):
        ManagerSettings(sample_interval_s=0.5, rpc_timeout_s=1.0)


def test_calibration_defaults_when_the_file_is_missing(tmp_path: Path) -> None:
    """Without a calibration file the configured bounds are used."""
    settings = ManagerSettings(
        calibration_file=tmp_path / "none.json", dis_avemin=0.1, dis_avemax=0.9
    )
    assert load_calibration(settings) == Calibration(0.1, 0.9)


def test_calibration_file_wins_over_the_defaults(tmp_path: Path) -> None:
    """A calibration file's bounds replace the configured ones."""
    path = tmp_path / "calibration.json"
    path.write_text(Calibration(0.05, 0.7).to_json())
    assert load_calibration(ManagerSettings(calibration_file=path)) == Calibration(0.05, 0.7)


def test_invalid_calibration_file_is_refused(tmp_path: Path) -> None:
    """A calibration file that does not parse stops start-up, naming the file."""
    path = tmp_path / "calibration.json"
    path.write_text('{"version": 1, "dis_avemin": 0.9, "dis_avemax": 0.1}')
    with pytest.raises(CalibrationFileError, match=r"calibration\.json"):
        load_calibration(ManagerSettings(calibration_file=path))


# -- against the real cluster and broker -----------------------------------------------------


@pytest.mark.slow
async def test_reports_of_every_pool_node_arrive_on_the_node_states_topic(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """Each pool node's report arrives keyed by node, UP, with ratios in [0, 1] and free memory."""
    pool = {s.name for s in pool_specs(cluster.settings)}
    budget = cluster.settings.node_memory_budget_mb
    seen: dict[str, NodeReport] = {}
    async with (
        node_states(kafka_broker.settings, cluster) as states,
        manager(cluster, kafka_broker, fast()),
    ):
        while set(seen) != pool:
            report = await states.next(lambda r: r.node_id not in seen, 10.0)
            seen[report.node_id] = report
    for report in seen.values():
        assert report.lifecycle is Lifecycle.UP
        assert 0.0 < report.memory <= 1.0
        assert 0.0 <= report.cpu <= 1.0
        assert report.free_memory_mb is not None
        assert 0.0 < report.free_memory_mb < budget
        assert report.lag is not None
        assert 0 <= report.lag <= cluster.settings.max_lag


@pytest.mark.slow
async def test_run_manager_publishes_until_its_stop_event_is_set(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """run_manager (what `ethgw up` runs) publishes reports and returns soon after the stop."""
    stop = asyncio.Event()
    async with node_states(kafka_broker.settings, cluster) as states:
        task = asyncio.create_task(run_manager(cluster, kafka_broker.settings, fast(), stop))
        try:
            await states.next(lambda r: True, 10.0)
        finally:
            stop.set()
            async with asyncio.timeout(5.0):
                await task


@pytest.mark.slow
async def test_stopped_node_is_published_down_and_up_again_after_start(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """A stopped node is DOWN, and UP with fresh samples and one more restart once started."""
    async with (
        node_states(kafka_broker.settings, cluster) as states,
        manager(cluster, kafka_broker, fast(heal=False)) as running,
    ):
        before = running.reports()["node-2"]
        try:
            await cluster.stop_node("node-2")
            down = await states.next(is_("node-2", Lifecycle.DOWN), 10.0)
            assert running.snapshot().nodes[1].down_reason is DownReason.PROCESS
            await cluster.start_node("node-2")
            up = await states.next(is_("node-2", Lifecycle.UP), 30.0)
        finally:
            await restore(cluster, "node-2")
    assert down.block is None
    assert down.free_memory_mb is None
    assert up.memory > 0.0  # a new sampler reads the new process
    assert up.restarts == before.restarts + 1


@pytest.mark.slow
async def test_node_restarted_between_two_ticks_is_sampled_afresh(
    cluster: GethCluster,
) -> None:
    """A restart the manager did not see happen (new pid) gives a new sampler: UP at the next
    tick with the restart counted, not DOWN from the old process's sampler."""
    settings = frozen(publish=False)
    async with ClusterManager(cluster, settings) as running:
        before = running.reports()["node-2"]
        try:
            await cluster.restart_node("node-2")
        finally:
            await restore(cluster, "node-2")
        await running.tick()
        after = running.reports()["node-2"]
    assert after.lifecycle is Lifecycle.UP
    assert after.restarts == before.restarts + 1
    assert after.memory > 0.0


@pytest.mark.slow
async def test_node_whose_rpc_freezes_is_down_and_up_when_it_answers_again(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """A live process whose RPC stops answering is DOWN (reason rpc) and UP when it resumes."""
    pid = cluster.runtime.pid(cluster.spec("node-1"))
    assert pid is not None
    async with (
        node_states(kafka_broker.settings, cluster) as states,
        manager(cluster, kafka_broker, fast()) as running,
    ):
        os.kill(pid, signal.SIGSTOP)
        try:
            down = await states.next(is_("node-1", Lifecycle.DOWN), 10.0)
            reason = running.snapshot().nodes[0].down_reason
        finally:
            os.kill(pid, signal.SIGCONT)
        await states.next(is_("node-1", Lifecycle.UP), 20.0)
    await wait_following(cluster)  # the resumed process is the one the next test finds
    assert reason is DownReason.RPC
    assert down.block is None
    assert down.free_memory_mb is not None  # the process is still sampled


@pytest.mark.slow
async def test_cordon_is_published_at_once(cluster: GethCluster, kafka_broker: KafkaBroker) -> None:
    """cordon() publishes CORDONED without waiting for the next tick."""
    async with (
        node_states(kafka_broker.settings, cluster) as states,
        manager(cluster, kafka_broker, frozen()) as running,
    ):
        started = time.monotonic()
        returned = await running.cordon("node-1")
        report = await states.next(lambda r: r.node_id == "node-1", 5.0)
        while report.lifecycle is Lifecycle.UP:  # the first tick's report may come first
            report = await states.next(lambda r: r.node_id == "node-1", 5.0)
        elapsed = time.monotonic() - started
        view = running.snapshot().nodes[0]
    assert returned.lifecycle is Lifecycle.CORDONED
    assert report.lifecycle is Lifecycle.CORDONED
    assert view.lifecycle is Lifecycle.CORDONED
    assert elapsed < FROZEN_INTERVAL_S / 2


@pytest.mark.slow
async def test_uncordon_is_published_up_at_once(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """uncordon() publishes the node UP again without waiting for the next tick."""
    async with (
        node_states(kafka_broker.settings, cluster) as states,
        manager(cluster, kafka_broker, frozen()) as running,
    ):
        await running.cordon("node-2")
        await states.next(is_("node-2", Lifecycle.CORDONED), 5.0)
        await running.uncordon("node-2")
        report = await states.next(lambda r: r.node_id == "node-2", 5.0)
    assert report.lifecycle is Lifecycle.UP


@pytest.mark.slow
async def test_cordon_of_an_unknown_node_is_refused(cluster: GethCluster) -> None:
    """Cordoning a node outside the pool (here the sealer) raises UnknownNodeError."""
    settings = frozen(publish=False)
    async with ClusterManager(cluster, settings) as running:
        with pytest.raises(UnknownNodeError, match="sealer"):
            await running.cordon("sealer")


@pytest.mark.slow
async def test_sampling_failure_marks_only_that_node_down(
    cluster: GethCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose sampler raises is DOWN (reason sampler), the others stay UP, and it is UP
    again once sampling works."""
    real_sampler = cluster.runtime.sampler

    def failing_for_node_1(spec: Any, memory_budget_mb: float, cpu_cores: float) -> Any:
        if spec.name == "node-1":
            raise RuntimeError("stats engine unavailable")
        return real_sampler(spec, memory_budget_mb, cpu_cores)

    settings = frozen(publish=False)
    with monkeypatch.context() as patch:
        patch.setattr(cluster.runtime, "sampler", failing_for_node_1)
        async with ClusterManager(cluster, settings) as running:
            await running.tick()
            during = running.reports()
            reason = running.snapshot().nodes[0].down_reason
            patch.undo()
            await running.tick()
            after = running.reports()
    assert during["node-1"].lifecycle is Lifecycle.DOWN
    assert reason is DownReason.SAMPLER
    assert during["node-2"].lifecycle is Lifecycle.UP
    assert after["node-1"].lifecycle is Lifecycle.UP


@pytest.mark.slow
async def test_snapshot_zones_and_lbh_follow_the_spec(cluster: GethCluster) -> None:
    """The snapshot's d, zone and LBH are those of lbh-spec.md for the published ratios."""
    settings = frozen(publish=False, dis_avemin=0.01, dis_avemax=0.5)
    async with ClusterManager(cluster, settings) as running:
        await running.tick()
        snapshot = running.snapshot()
        reports = running.reports()
    dis_ave = (0.01 + 0.5) / 2
    expected_lbh = 0.0
    for view in snapshot.nodes:
        report = reports[view.node_id]
        d = distance(report.memory, report.cpu)
        assert view.distance == pytest.approx(d)
        if view.lifecycle is Lifecycle.DOWN:
            assert view.zone is Zone.DOWN
            continue
        expected_lbh += dis_ave - d
        expected_zone = Zone.I if d <= dis_ave else Zone.II if d <= 0.5 else Zone.III
        assert view.zone is expected_zone
    assert snapshot.dis_ave == pytest.approx(dis_ave)
    assert snapshot.lbh == pytest.approx(expected_lbh)
    assert snapshot.paused is (snapshot.lbh < 0)
    assert snapshot.ticks == 2
    assert math.isfinite(snapshot.tick_seconds)


# -- the operator API ------------------------------------------------------------------------


@asynccontextmanager
async def api_client(cluster: GethCluster) -> AsyncIterator[httpx.AsyncClient]:
    """The operator API in-process, its lifespan run, around a manager that publishes nothing."""
    app = create_app(lambda: ClusterManager(cluster, frozen(publish=False)))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://manager", auth=signing_auth()
        ) as client,
    ):
        yield client


@pytest.mark.slow
async def test_api_lists_every_pool_node_with_zone_and_lbh(cluster: GethCluster) -> None:
    """GET /nodes gives each pool node's life cycle, zone and distance, and the cluster's LBH."""
    async with api_client(cluster) as client:
        response = await client.get("/nodes")
    assert response.status_code == 200
    body = response.json()
    assert [n["node_id"] for n in body["nodes"]] == [s.name for s in pool_specs(cluster.settings)]
    for node in body["nodes"]:
        assert node["lifecycle"] == "up"
        assert node["zone"] in {"I", "II", "III"}
        assert node["distance"] == pytest.approx(distance(node["memory"], node["cpu"]))
    assert isinstance(body["lbh"], float)


@pytest.mark.slow
async def test_api_cordon_and_uncordon_change_the_listed_state(cluster: GethCluster) -> None:
    """POST cordon answers CORDONED and /nodes shows it; POST uncordon makes it UP again."""
    async with api_client(cluster) as client:
        cordoned = await client.post("/nodes/node-2/cordon")
        listed = (await client.get("/nodes")).json()["nodes"]
        uncordoned = await client.post("/nodes/node-2/uncordon")
    assert cordoned.status_code == 200
    assert cordoned.json()["lifecycle"] == "cordoned"
    assert {n["node_id"]: n["lifecycle"] for n in listed}["node-2"] == "cordoned"
    assert uncordoned.json()["lifecycle"] == "up"


@pytest.mark.slow
async def test_api_cordon_of_an_unknown_node_is_404(cluster: GethCluster) -> None:
    """POST cordon of a node that is not in the pool answers 404 naming the pool."""
    async with api_client(cluster) as client:
        response = await client.post("/nodes/node-99/cordon")
    assert response.status_code == 404
    assert "node-1" in response.json()["detail"]


@pytest.mark.slow
async def test_api_metrics_expose_node_gauges_and_lbh(cluster: GethCluster) -> None:
    """GET /metrics has memory, CPU, distance and zone per node, the sample count and LBH."""
    async with api_client(cluster) as client:
        text = (await client.get("/metrics")).text
    for name in ("node-1", "node-2"):
        assert f'ethgw_node_memory_ratio{{node="{name}"}}' in text
        assert f'ethgw_node_cpu_ratio{{node="{name}"}}' in text
        assert f'ethgw_node_distance{{node="{name}"}}' in text
        assert f'ethgw_node_samples_total{{node="{name}"}} 1.0' in text
    assert 'ethgw_node_zone{node="node-1",zone="DOWN"} 0.0' in text
    assert "ethgw_cluster_lbh " in text


@pytest.mark.slow
async def test_api_healthz_is_ok_while_the_loop_ticks(cluster: GethCluster) -> None:
    """GET /healthz answers 200 right after the manager's first tick."""
    async with api_client(cluster) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.slow
async def test_serve_api_answers_over_http_until_its_stop_event_is_set(
    cluster: GethCluster,
) -> None:
    """serve_api (the launcher's embedded variant) serves /nodes on its port and returns on stop."""
    settings = fast(api_port=free_port(), publish=False)  # run_manager's test covers Kafka
    stop = asyncio.Event()
    task = asyncio.create_task(serve_api(cluster, KafkaSettings(), settings, stop))
    url = f"http://127.0.0.1:{settings.api_port}/nodes"
    try:
        async with httpx.AsyncClient(auth=signing_auth()) as client, asyncio.timeout(15.0):
            while True:
                try:
                    response = await client.get(url)
                    break
                except httpx.ConnectError:
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.1)
    finally:
        stop.set()
        async with asyncio.timeout(10.0):
            await task
    assert response.status_code == 200
    assert {n["node_id"] for n in response.json()["nodes"]} == {"node-1", "node-2"}


@pytest.mark.slow
async def test_serve_api_on_a_taken_port_names_the_setting(cluster: GethCluster) -> None:
    """A taken API port stops serve_api at once with the port and its setting."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"{port}.*ETHGW_MANAGER_API_PORT"):
            await serve_api(cluster, KafkaSettings(), frozen(api_port=port), asyncio.Event())


class FlakySink:
    """A sink that refuses every batch until `fail` is cleared, then keeps what it is sent."""

    def __init__(self) -> None:
        self.fail = True
        self.sent: list[NodeReport] = []
        self.received = asyncio.Event()

    async def send(self, reports: Sequence[NodeReport]) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.extend(reports)
        self.received.set()


@pytest.mark.slow
async def test_states_queued_while_kafka_refuses_go_out_newest_only_on_recovery(
    cluster: GethCluster,
) -> None:
    """While the sink fails, ticks and cordons go on; on recovery each node's newest state is
    sent once, and the manager reports the failure meanwhile."""
    sink = FlakySink()
    settings = frozen(publish_timeout_s=0.2)
    async with ClusterManager(cluster, settings, sink) as running:
        await running.tick()
        await running.cordon("node-1")  # returns after the publish timeout, state kept
        failing = not running.publishing_ok
        sink.fail = False
        async with asyncio.timeout(5.0):
            await sink.received.wait()
        recovered = running.publishing_ok
    assert failing
    assert recovered
    assert sorted(r.node_id for r in sink.sent) == ["node-1", "node-2"]
    assert {r.node_id: r.lifecycle for r in sink.sent}["node-1"] is Lifecycle.CORDONED
