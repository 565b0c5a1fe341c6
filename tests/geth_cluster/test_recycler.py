"""Recycling of zone III nodes and the operator's restart, on the real cluster and broker.

A zone III node is made by running the manager with bounds far below what an idle Geth node
measures (Dis_avemax 0.002), so every routable node is in zone III from its first samples.
Every test leaves all nodes of the shared session cluster running and following the head.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import TopicPartition

from balancer import RecycleState, Zone
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import decode, kafka_consumer
from ethgw_wire.node_reports import ClusterEvent, EventKind, Lifecycle, NodeReport
from ethgw_wire.request_auth import signing_auth
from ethgw_wire.settings import KafkaSettings
from geth_cluster.api import create_app
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.errors import NodeStartError
from geth_cluster.manager import ClusterManager, open_manager
from tests.geth_cluster.test_manager import ensure_following, node_states, wait_following

RECYCLE_STEPS = [EventKind.DRAINING, EventKind.RESTARTING, EventKind.SYNCING, EventKind.UP]
NEVER = math.inf  # a cool-down that never ends: keeps the policy off a node


def zone3(**overrides: Any) -> ManagerSettings:
    """Four ticks a second and bounds every real node exceeds: all routable nodes in zone III."""
    options: dict[str, Any] = {
        "sample_interval_s": 0.25,
        "rpc_timeout_s": 0.25,
        "dis_avemin": 0.001,
        "dis_avemax": 0.002,
        "restart_after": 2,
        "cooldown_s": 600.0,
        "drain_s": 0.5,
        "resync_timeout_s": 60.0,
    }
    options.update(overrides)
    return ManagerSettings(**options)


@asynccontextmanager
async def events_topic(kafka: KafkaSettings) -> AsyncIterator[Any]:
    """The events topic from its current end on."""
    async with kafka_consumer(kafka, group_id=None) as consumer:
        partition = TopicPartition(kafka.topic_events, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.position(partition)
        yield consumer


async def read_events_until(
    consumer: Any, node: str, last: set[EventKind], timeout_s: float
) -> list[ClusterEvent]:
    """`node`'s events from the topic, up to and including the first whose kind is in `last`."""
    seen: list[ClusterEvent] = []
    async with asyncio.timeout(timeout_s):
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    event = decode(ClusterEvent, record.value)
                    if event.node != node:
                        continue
                    assert record.key == node.encode()
                    seen.append(event)
                    if event.kind in last:
                        return seen


def field(event: ClusterEvent, name: str) -> int:
    match = re.search(rf"\b{name}=(\d+)", event.detail)
    assert match is not None, f"no {name} in {event.detail!r}"
    return int(match.group(1))


@pytest.fixture
async def cluster(geth_cluster: GethCluster) -> GethCluster:
    """The session cluster once every node follows the head."""
    await ensure_following(geth_cluster)
    return geth_cluster


# -- one automatic episode, observed once, checked by several tests ---------------------------


@dataclass(frozen=True)
class Episode:
    pid_before: int | None
    pid_after: int | None
    topic_events: list[ClusterEvent]
    logged_events: list[ClusterEvent]
    lifecycles: list[Lifecycle]  # node-1's published states from the start of the episode
    restarts: dict[tuple[str, str], int]
    final_lifecycle: Lifecycle


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def zone3_episode(geth_cluster: GethCluster, kafka_broker: KafkaBroker) -> Episode:
    """node-1 recycled for zone III by a manager that keeps node-2 in cool-down."""
    await ensure_following(geth_cluster)
    spec = geth_cluster.spec("node-1")
    pid_before = geth_cluster.runtime.pid(spec)
    lifecycles: list[Lifecycle] = []
    try:
        async with (
            events_topic(kafka_broker.settings) as events,
            node_states(kafka_broker.settings, geth_cluster) as states,
            open_manager(
                geth_cluster,
                kafka_broker.settings,
                zone3(),
                recycle_state=RecycleState(cooled_at={"node-2": NEVER}),
            ) as running,
        ):
            topic_events = await read_events_until(
                events, "node-1", {EventKind.UP, EventKind.RESTART_FAILED}, 120.0
            )

            def collect(report: NodeReport) -> bool:
                if report.node_id == "node-1":
                    lifecycles.append(report.lifecycle)
                # Done at the first UP after the episode's SYNCING (the first tick's UP and
                # any before the drain come earlier).
                return Lifecycle.SYNCING in lifecycles and lifecycles[-1] is Lifecycle.UP

            await states.next(collect, 10.0)
            await running.tick()
            final = running.snapshot().nodes[0].lifecycle
            logged = running.events.recent()
            restarts = dict(running.recycler.restarts)
    finally:
        await wait_following(geth_cluster, 60.0)
    return Episode(
        pid_before=pid_before,
        pid_after=geth_cluster.runtime.pid(spec),
        topic_events=topic_events,
        logged_events=logged,
        lifecycles=lifecycles,
        restarts=restarts,
        final_lifecycle=final,
    )


@pytest.mark.slow
async def test_zone3_node_goes_through_drain_restart_resync_and_up(zone3_episode: Episode) -> None:
    """The events topic shows draining, restarting, syncing, up for node-1, reason zone3."""
    assert [e.kind for e in zone3_episode.topic_events] == RECYCLE_STEPS
    assert {e.reason for e in zone3_episode.topic_events} == {"zone3"}


@pytest.mark.slow
async def test_zone3_node_is_really_restarted(zone3_episode: Episode) -> None:
    """The recycled node runs as a new process afterwards."""
    assert zone3_episode.pid_before is not None
    assert zone3_episode.pid_after is not None
    assert zone3_episode.pid_after != zone3_episode.pid_before


@pytest.mark.slow
async def test_zone3_node_is_published_out_of_routing_then_up(zone3_episode: Episode) -> None:
    """node-1's published states pass through DRAINING, RESTARTING, SYNCING before UP."""
    seen = zone3_episode.lifecycles
    steps = [Lifecycle.DRAINING, Lifecycle.RESTARTING, Lifecycle.SYNCING, Lifecycle.UP]
    positions = [seen.index(step) for step in steps[:3]]
    assert positions == sorted(positions)
    assert seen[-1] is Lifecycle.UP
    assert Lifecycle.UP not in seen[positions[0] : positions[2]]
    assert zone3_episode.final_lifecycle is Lifecycle.UP


@pytest.mark.slow
async def test_zone3_node_is_readmitted_only_past_a_block_sealed_after_the_restart(
    zone3_episode: Episode,
) -> None:
    """The up event's block is above the head recorded when the restart finished."""
    syncing, up = zone3_episode.topic_events[2], zone3_episode.topic_events[3]
    assert field(up, "block") > field(syncing, "head")
    assert field(up, "head") - field(up, "block") <= 3


@pytest.mark.slow
async def test_zone3_restart_is_counted_and_logged(zone3_episode: Episode) -> None:
    """One finished restart of node-1 for zone3 is counted, and the in-memory log matches."""
    assert zone3_episode.restarts == {("node-1", "zone3"): 1}
    logged = [e for e in zone3_episode.logged_events if e.node == "node-1"]
    assert logged == zone3_episode.topic_events


@pytest.mark.slow
async def test_zone3_episode_leaves_the_cooled_node_alone(zone3_episode: Episode) -> None:
    """node-2, in zone III too but in cool-down, is not recycled (one node at a time, cooled)."""
    assert all(e.node != "node-2" for e in zone3_episode.logged_events)


# -- the rules that stop a restart -------------------------------------------------------------


@pytest.mark.slow
async def test_last_routable_node_is_never_recycled(cluster: GethCluster) -> None:
    """With node-2 cordoned, node-1 stays UP in zone III for many ticks and is not drained."""
    # Ticks only when called: the first (on entry) counts one zone III sample of each node,
    # too few for a restart; every later one sees node-2 cordoned.
    settings = zone3(sample_interval_s=60.0, restart_after=2, publish=False)
    async with ClusterManager(cluster, settings) as running:
        await running.cordon("node-2")
        for _ in range(8):
            await running.tick()
        view = running.snapshot().nodes[0]
        kinds = [e.kind for e in running.events.recent() if e.node == "node-1"]
        restarting = running.recycler.running
    assert view.zone is Zone.III
    assert view.lifecycle is Lifecycle.UP
    assert kinds == []
    assert restarting is None


@pytest.mark.slow
async def test_disabled_recycling_leaves_zone3_nodes_up(cluster: GethCluster) -> None:
    """With `recycle` off, zone III nodes are never drained."""
    settings = zone3(restart_after=1, publish=False, recycle=False)
    async with ClusterManager(cluster, settings) as running:
        for _ in range(6):
            await running.tick()
        snapshot = running.snapshot()
        events = running.events.recent()
    assert [v.zone for v in snapshot.nodes] == [Zone.III, Zone.III]
    assert [v.lifecycle for v in snapshot.nodes] == [Lifecycle.UP, Lifecycle.UP]
    assert events == []


@pytest.mark.slow
async def test_failed_restart_is_an_event_and_clears_the_state(
    cluster: GethCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart that raises is recorded as restart_failed and counted, and the node is UP
    again instead of being left out of routing."""

    async def broken_restart(name: str) -> None:
        raise NodeStartError(f"{name} would not start")

    settings = operator_settings(sample_interval_s=60.0, publish=False, drain_s=0.0)
    async with ClusterManager(cluster, settings) as running:
        monkeypatch.setattr(cluster, "restart_node", broken_restart)
        running.recycler.restart("node-1")
        await running.recycler.wait_idle()
        monkeypatch.undo()
        await running.tick()
        view = running.snapshot().nodes[0]
        events = running.events.recent()
        failures = dict(running.recycler.failures)
    assert [(e.kind, e.reason) for e in events] == [
        (EventKind.DRAINING, "operator"),
        (EventKind.RESTARTING, "operator"),
        (EventKind.RESTART_FAILED, "operator"),
    ]
    assert "would not start" in events[-1].detail
    assert view.lifecycle is Lifecycle.UP
    assert failures == {("node-1", "operator"): 1}


# -- the operator's restart --------------------------------------------------------------------


@asynccontextmanager
async def api_client(
    cluster: GethCluster, kafka: KafkaSettings, settings: ManagerSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The operator API in-process around a manager publishing to `kafka`."""
    app = create_app(lambda: open_manager(cluster, kafka, settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://manager", auth=signing_auth()
        ) as client,
    ):
        yield client


def operator_settings(**overrides: Any) -> ManagerSettings:
    """Ordinary bounds and no automatic recycling: only the operator restarts."""
    options: dict[str, Any] = {
        "sample_interval_s": 0.25,
        "rpc_timeout_s": 0.25,
        "recycle": False,
        "drain_s": 0.5,
    }
    options.update(overrides)
    return ManagerSettings(**options)


@pytest.mark.slow
async def test_operator_restart_goes_through_the_same_steps(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """POST /nodes/node-2/restart answers 202; the node gets a new pid, and GET /events and the
    events topic show draining, restarting, syncing, up with reason operator."""
    spec = cluster.spec("node-2")
    pid_before = cluster.runtime.pid(spec)
    try:
        async with (
            events_topic(kafka_broker.settings) as topic,
            api_client(cluster, kafka_broker.settings, operator_settings()) as client,
        ):
            response = await client.post("/nodes/node-2/restart")
            from_topic = await read_events_until(
                topic, "node-2", {EventKind.UP, EventKind.RESTART_FAILED}, 120.0
            )
            listed = (await client.get("/events")).json()["events"]
            metrics = (await client.get("/metrics")).text
    finally:
        await wait_following(cluster, 60.0)
    assert response.status_code == 202
    assert [e.kind for e in from_topic] == RECYCLE_STEPS
    assert {e.reason for e in from_topic} == {"operator"}
    assert [(e["kind"], e["reason"]) for e in listed if e["node"] == "node-2"] == [
        (kind.value, "operator") for kind in RECYCLE_STEPS
    ]
    assert cluster.runtime.pid(spec) not in (None, pid_before)
    assert 'ethgw_manager_restarts_total{node="node-2",reason="operator"} 1.0' in metrics


@pytest.mark.slow
async def test_operator_restart_while_one_runs_is_409(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """A second restart during the first one's drain is refused with 409; closing the manager
    mid-drain ends the first without stopping its node."""
    spec = cluster.spec("node-1")
    pid_before = cluster.runtime.pid(spec)
    settings = operator_settings(drain_s=60.0, publish=False)
    async with api_client(cluster, kafka_broker.settings, settings) as client:
        first = await client.post("/nodes/node-1/restart")
        second = await client.post("/nodes/node-2/restart")
        listed = (await client.get("/nodes")).json()["nodes"]
    assert first.status_code == 202
    assert second.status_code == 409
    assert "node-1" in second.json()["detail"]
    assert {n["node_id"]: n["lifecycle"] for n in listed}["node-1"] == "draining"
    assert cluster.runtime.pid(spec) == pid_before


@pytest.mark.slow
async def test_operator_restart_of_an_unknown_node_is_404(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """POST restart of a node outside the pool (the sealer) answers 404 and restarts nothing."""
    settings = operator_settings(publish=False)
    async with api_client(cluster, kafka_broker.settings, settings) as client:
        response = await client.post("/nodes/sealer/restart")
        events = (await client.get("/events")).json()["events"]
    assert response.status_code == 404
    assert events == []


@pytest.mark.slow
async def test_cordon_and_uncordon_are_events(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """Cordon and uncordon appear in GET /events, in order."""
    settings = operator_settings(publish=False)
    async with api_client(cluster, kafka_broker.settings, settings) as client:
        await client.post("/nodes/node-1/cordon")
        await client.post("/nodes/node-1/uncordon")
        events = (await client.get("/events")).json()["events"]
    assert [(e["node"], e["kind"]) for e in events] == [
        ("node-1", "cordoned"),
        ("node-1", "uncordoned"),
    ]
