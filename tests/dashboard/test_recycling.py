"""The dashboard during a recycling episode, in a real browser, on the session's Geth cluster.

The manager's bounds are set just below what the idle nodes measure (70% of the smallest
idle distance), so every node is in zone III, LBH is negative (paused), and the manager
recycles node-1 on its own; node-2 is kept in cool-down, so it stays in zone III throughout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from balancer import RecycleState, Zone
from devstack.kafka_broker import KafkaBroker
from geth_cluster.cluster import GethCluster
from geth_cluster.manager import ClusterManager
from tests.dashboard.conftest import (
    Dashboard,
    dashboard_stack,
    open_board,
    quiet_manager,
    screenshot,
)
from tests.geth_cluster.test_manager import ensure_following, wait_following

pytestmark = pytest.mark.slow

NEVER = math.inf  # a cool-down that never ends: node-2 is never recycled
EPISODE_WAIT_MS = 120_000
# Zone III ticks before the recycler drains node-1: 10 s at 2 ticks a second, time for the
# page to show the cluster before the episode starts.
RESTART_AFTER = 20


async def idle_distance(cluster: GethCluster) -> float:
    """The smallest distance of the pool nodes, idle, after a few smoothed samples."""
    async with ClusterManager(cluster, quiet_manager(sample_interval_s=60.0)) as probe:
        for _ in range(4):
            await probe.tick()
            await asyncio.sleep(0.3)
        distances = [n.distance for n in probe.snapshot().nodes if n.zone is not Zone.DOWN]
    assert distances, "no pool node answers"
    return min(distances)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def recycling(
    geth_cluster: GethCluster, kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Dashboard]:
    await ensure_following(geth_cluster)
    lowest = await idle_distance(geth_cluster)
    settings = quiet_manager(
        dis_avemin=0.2 * lowest,
        dis_avemax=0.7 * lowest,
        recycle=True,
        restart_after=RESTART_AFTER,
        cooldown_s=600.0,
    )
    try:
        async with dashboard_stack(
            geth_cluster,
            kafka_broker.settings,
            settings,
            tmp_path_factory.mktemp("dashboard-recycling"),
            recycle_state=RecycleState(cooled_at={"node-2": NEVER}),
        ) as running:
            yield running
    finally:
        await wait_following(geth_cluster, 60.0)


async def plane_geometry(page: Page, node: str) -> dict[str, Any]:
    """The drawn point of `node` and the two circles, in the SVG's units."""
    result: dict[str, Any] = await page.evaluate(
        """node => {
            const point = document.querySelector(`#plane .node-point[data-node="${node}"]`);
            const [inner, outer] = [...document.querySelectorAll('#plane circle.bound')]
                .map(c => Number(c.getAttribute('r'))).sort((a, b) => a - b);
            const origin = document.querySelector('#plane circle.bound');
            return {
                x: Number(point.getAttribute('cx')) - Number(origin.getAttribute('cx')),
                y: Number(origin.getAttribute('cy')) - Number(point.getAttribute('cy')),
                dis_ave: inner, dis_avemax: outer, zone: point.dataset.zone,
            };
        }""",
        node,
    )
    return result


async def test_node_in_zone3_is_drawn_in_zone3(page: Page, recycling: Dashboard) -> None:
    """node-2, beyond Dis_avemax, is a zone III point outside the Dis_avemax circle, and its
    row says zone III."""
    await open_board(page, recycling)
    await page.wait_for_selector('#plane .node-point[data-node="node-2"][data-zone="III"]')
    geometry = await plane_geometry(page, "node-2")
    assert math.hypot(geometry["x"], geometry["y"]) > geometry["dis_avemax"]
    assert await page.inner_text('tr[data-node="node-2"] td.zone') == "III"
    await screenshot(page, "dashboard-zone3")


async def test_negative_lbh_is_shown_as_a_pause(page: Page, recycling: Dashboard) -> None:
    """With every node beyond Dis_avemax, LBH < 0: the status says PAUSED, the LBH chart has
    a shaded paused period and the events list a `paused` event."""
    await open_board(page, recycling)
    await page.locator("#status").filter(has_text="PAUSED").wait_for()
    await page.wait_for_selector("#lbh rect.pause")
    await page.wait_for_selector('#events li[data-kind="paused"][data-node="cluster"]')


async def test_recycling_episode_is_shown_step_by_step(
    page: Page, recycling: Dashboard, geth_cluster: GethCluster
) -> None:
    """The manager's own restart of node-1 shows in its row (restarting) and in the events
    list: draining, restarting, syncing, up, reason zone3."""
    await open_board(page, recycling)
    row = page.locator('tr[data-node="node-1"]')
    await page.wait_for_selector(
        'tr[data-node="node-1"][data-state="restarting"], '
        'tr[data-node="node-1"][data-state="syncing"]',
        timeout=EPISODE_WAIT_MS,
    )
    assert await row.locator("button.restart").is_disabled()
    await screenshot(page, "recycling-episode")
    await page.wait_for_selector(
        '#events li[data-node="node-1"][data-kind="up"][data-reason="zone3"]',
        timeout=EPISODE_WAIT_MS,
    )
    kinds = await page.locator('#events li[data-node="node-1"]').evaluate_all(
        "items => items.map(i => i.dataset.kind).reverse()"
    )
    assert kinds == ["draining", "restarting", "syncing", "up"]
    await screenshot(page, "recycling-episode-after")
