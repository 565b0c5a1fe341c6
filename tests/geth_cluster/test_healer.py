"""Self-healing on the real cluster and broker: a killed geth is started again by the manager,
and a node that keeps dying is cordoned and left stopped.

Every test leaves all nodes of the shared session cluster running, uncordoned and following.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from devstack.kafka_broker import KafkaBroker
from devstack.sandbox import kill_node
from ethgw_wire.node_reports import EventKind
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from tests.geth_cluster.test_manager import ensure_following, restore
from tests.geth_cluster.test_recycler import api_client, events_topic, read_events_until

NODE = "node-2"


def healing(**overrides: Any) -> ManagerSettings:
    """Four ticks a second, no recycling, a short first backoff: only the healer restarts."""
    options: dict[str, Any] = {
        "sample_interval_s": 0.25,
        "rpc_timeout_s": 0.25,
        "recycle": False,
        "heal": True,
        "heal_backoff_s": 0.5,
    }
    options.update(overrides)
    return ManagerSettings(**options)


async def listed_up(client: httpx.AsyncClient, node: str, timeout_s: float) -> dict[str, Any]:
    """`node` as GET /nodes lists it, once UP: after its `up` event the manager's own DOWN rule
    still waits for a tick that sees it at the head with a fresh pending state."""
    async with asyncio.timeout(timeout_s):
        while True:
            nodes = (await client.get("/nodes")).json()["nodes"]
            view: dict[str, Any] = next(n for n in nodes if n["node_id"] == node)
            if view["lifecycle"] == "up":
                return view
            await asyncio.sleep(0.25)


@pytest.fixture
async def cluster(geth_cluster: GethCluster) -> GethCluster:
    """The session cluster once every node follows the head."""
    await ensure_following(geth_cluster)
    return geth_cluster


@pytest.mark.slow
async def test_killed_node_is_started_again_and_up_with_one_restart(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """kill -9 of node-2's geth: the manager starts it again; it is UP with restarts=1, the
    events topic and GET /events carry restarting, syncing, up with reason crashed, and the
    restart is counted in ethgw_manager_restarts_total."""
    try:
        async with (
            events_topic(kafka_broker.settings) as topic,
            api_client(cluster, kafka_broker.settings, healing()) as client,
        ):
            killed_at = time.time()
            killed = kill_node(cluster, NODE)
            from_topic = await read_events_until(
                topic, NODE, {EventKind.UP, EventKind.RESTART_FAILED}, 120.0
            )
            view = await listed_up(client, NODE, 15.0)
            listed = (await client.get("/events")).json()["events"]
            metrics = (await client.get("/metrics")).text
    finally:
        await restore(cluster, NODE)
    for event in from_topic:  # the figures docs/cluster-manager.md quotes
        print(f"t={event.time - killed_at:6.2f}s kind={event.kind} {event.detail}")
    assert [(e.kind, e.reason) for e in from_topic] == [
        (EventKind.RESTARTING, "crashed"),
        (EventKind.SYNCING, "crashed"),
        (EventKind.UP, "crashed"),
    ]
    assert [(e["kind"], e["reason"]) for e in listed if e["node"] == NODE] == [
        ("restarting", "crashed"),
        ("syncing", "crashed"),
        ("up", "crashed"),
    ]
    assert view["lifecycle"] == "up"
    assert view["restarts"] == 1
    assert cluster.runtime.pid(cluster.spec(NODE)) not in (None, killed)
    assert 'ethgw_manager_restarts_total{node="node-2",reason="crashed"} 1.0' in metrics


@pytest.mark.slow
async def test_node_past_the_restart_limit_is_cordoned_and_left_stopped(
    cluster: GethCluster, kafka_broker: KafkaBroker
) -> None:
    """A death past heal_max_restarts is a crash loop: a cordoned event with reason crashloop,
    the node cordoned, and no process started for it."""
    spec = cluster.spec(NODE)
    try:
        async with (
            events_topic(kafka_broker.settings) as topic,
            api_client(cluster, kafka_broker.settings, healing(heal_max_restarts=0)) as client,
        ):
            kill_node(cluster, NODE)
            from_topic = await read_events_until(
                topic, NODE, {EventKind.CORDONED, EventKind.RESTARTING}, 30.0
            )
            await asyncio.sleep(2.0)  # eight ticks: time for a wrong restart to show
            nodes = (await client.get("/nodes")).json()["nodes"]
            running = await cluster.runtime.is_running(spec)
            await client.post(f"/nodes/{NODE}/uncordon")
    finally:
        await restore(cluster, NODE)
    view = next(n for n in nodes if n["node_id"] == NODE)
    assert [(e.kind, e.reason) for e in from_topic] == [(EventKind.CORDONED, "crashloop")]
    assert "deaths=1" in from_topic[0].detail
    assert view["cordoned"] is True
    assert view["down_reason"] == "process"
    assert not running
