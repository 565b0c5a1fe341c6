"""The manager's LBH history (GET /lbh), which the dashboard's LBH chart draws."""

from __future__ import annotations

import httpx
import pytest

from ethgw_wire.request_auth import signing_auth
from geth_cluster.api import create_app
from geth_cluster.cluster import GethCluster
from geth_cluster.manager import ClusterManager
from tests.geth_cluster.test_manager import FROZEN_INTERVAL_S, frozen

pytestmark = pytest.mark.slow


async def test_every_tick_adds_its_lbh(geth_cluster: GethCluster) -> None:
    """The first tick (on start) and two more give three points, in time order, the last
    one the snapshot's LBH."""
    async with ClusterManager(geth_cluster, frozen(publish=False)) as running:
        await running.tick()
        await running.tick()
        history = running.lbh_history()
        lbh = running.snapshot().lbh
    assert len(history) == 3
    assert [at for at, _ in history] == sorted(at for at, _ in history)
    assert history[-1][1] == pytest.approx(lbh)


async def test_history_keeps_only_the_last_ticks(geth_cluster: GethCluster) -> None:
    """With lbh_history_ticks=2, four ticks leave the last two."""
    async with ClusterManager(geth_cluster, frozen(publish=False, lbh_history_ticks=2)) as running:
        first = running.lbh_history()[0]
        for _ in range(3):
            await running.tick()
        history = running.lbh_history()
    assert len(history) == 2
    assert first not in history


async def test_api_lists_the_history(geth_cluster: GethCluster) -> None:
    """GET /lbh answers the sampling interval and [time, lbh] pairs."""
    app = create_app(lambda: ClusterManager(geth_cluster, frozen(publish=False)))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://manager", auth=signing_auth()
        ) as client,
    ):
        body = (await client.get("/lbh")).json()
    assert body["interval_s"] == FROZEN_INTERVAL_S
    assert len(body["points"]) == 1
    assert all(len(point) == 2 for point in body["points"])
