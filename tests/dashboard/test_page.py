"""The dashboard in a real browser, on a real manager watching the session's Geth cluster:
access with and without the admin key, the nodes it shows, and the operator's buttons.

The manager keeps the ordinary bounds and does not recycle on its own: only the buttons act.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Dialog, Page

from devstack.kafka_broker import KafkaBroker
from geth_cluster.cluster import GethCluster
from geth_cluster.layout import pool_specs
from tests.dashboard.conftest import (
    Dashboard,
    dashboard_stack,
    open_board,
    open_with_key,
    quiet_manager,
    screenshot,
)
from tests.geth_cluster.test_manager import ensure_following, wait_following

pytestmark = pytest.mark.slow

# Predicates are functions, never bare expressions: Playwright polls an expression with
# eval() inside the page, which the page's Content-Security-Policy forbids.
POSITIVE = "s => Number(document.querySelector(s).textContent) > 0"
RESTART_WAIT_MS = 120_000  # drain, geth restart (about 11 s), resync, on a loaded machine


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dashboard(
    geth_cluster: GethCluster, kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Dashboard]:
    await ensure_following(geth_cluster)
    state_dir: Path = tmp_path_factory.mktemp("dashboard-state")
    async with dashboard_stack(
        geth_cluster, kafka_broker.settings, quiet_manager(), state_dir
    ) as running:
        yield running


async def test_data_endpoint_refuses_without_a_key(dashboard: Dashboard) -> None:
    """GET /admin/dashboard without a key is 401 with the error envelope."""
    async with dashboard.client(None) as client:
        response = await client.get("/admin/dashboard")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


async def test_data_endpoint_refuses_a_user_key(dashboard: Dashboard) -> None:
    """GET /admin/dashboard with a user key is 403: the dashboard is for admins."""
    async with dashboard.client(dashboard.user_key) as client:
        response = await client.get("/admin/dashboard")
    assert response.status_code == 403


async def test_page_without_a_key_asks_for_one_and_shows_no_data(
    page: Page, dashboard: Dashboard
) -> None:
    """Opened without a key, the page shows the key form and no node."""
    await page.goto(dashboard.page_url)
    await page.wait_for_selector("#key-form", state="visible")
    assert await page.is_hidden("#board")
    assert await page.locator("#nodes tbody tr").count() == 0


async def test_page_refuses_a_wrong_key(page: Page, dashboard: Dashboard) -> None:
    """A key the gateway does not know is refused: the form stays, with the reason."""
    await open_with_key(page, dashboard, "ethgw_not-a-key")
    error = page.locator("#login-error")
    await error.filter(has_text=re.compile("not valid")).wait_for()
    assert await page.is_hidden("#board")


async def test_page_refuses_a_user_key(page: Page, dashboard: Dashboard) -> None:
    """A user key is refused: the page says an admin key is needed."""
    await open_with_key(page, dashboard, dashboard.user_key)
    await page.locator("#login-error").filter(has_text="admin").wait_for()
    assert await page.is_hidden("#board")


async def test_page_with_the_admin_key_shows_every_pool_node(
    page: Page, dashboard: Dashboard, geth_cluster: GethCluster
) -> None:
    """Each pool node has one table row and one point in the state plane."""
    await open_board(page, dashboard)
    expected = sorted(spec.name for spec in pool_specs(geth_cluster.settings))
    rows = page.locator("#nodes tbody tr[data-node]")
    points = page.locator("#plane .node-point")
    await page.wait_for_function(
        "n => document.querySelectorAll('#plane .node-point').length === n", arg=len(expected)
    )
    assert sorted(await rows.evaluate_all("rows => rows.map(r => r.dataset.node)")) == expected
    assert sorted(await points.evaluate_all("ps => ps.map(p => p.dataset.node)")) == expected
    await screenshot(page, "dashboard")


async def test_page_updates_every_second(page: Page, dashboard: Dashboard) -> None:
    """The status line's time changes without a reload: the page polls."""
    await open_board(page, dashboard)
    first = await page.inner_text("#status")
    await page.wait_for_function(
        "first => document.querySelector('#status').textContent !== first", arg=first
    )


async def test_gateway_traffic_is_shown(page: Page, dashboard: Dashboard) -> None:
    """Requests to the API appear as a request rate (here 503s: no service instance)."""

    async def traffic() -> None:
        async with dashboard.client(dashboard.user_key) as client:
            while True:  # steady, so the 10 s window has calls however slow the page is
                await client.get("/api/v1/conn/blockNum")
                await asyncio.sleep(0.05)

    calling = asyncio.create_task(traffic())
    try:
        await open_board(page, dashboard)
        await page.wait_for_function(POSITIVE, arg="#rps")
        await page.wait_for_function(POSITIVE, arg="#eps")
    finally:
        calling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await calling


async def test_kafka_lag_is_shown(page: Page, dashboard: Dashboard) -> None:
    """Tasks waiting in Kafka is a number measured from the session's broker."""
    await open_board(page, dashboard)
    await page.wait_for_function(
        "s => /^\\d+$/.test(document.querySelector(s).textContent)", arg="#lag"
    )


async def test_dismissed_restart_sends_nothing(page: Page, dashboard: Dashboard) -> None:
    """Cancelling the restart's confirmation leaves the node alone."""
    await open_board(page, dashboard)
    before = len(dashboard.manager.events.recent())
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.click('tr[data-node="node-1"] button.restart')
    await page.locator("#action-result").filter(has_text="cancelled").wait_for()
    assert len(dashboard.manager.events.recent()) == before
    assert dashboard.manager.recycler.running is None


async def test_cordon_toggle_cordons_then_uncordons(page: Page, dashboard: Dashboard) -> None:
    """Cordon (confirmed) makes the node cordoned and the button Uncordon; Uncordon undoes it."""
    await open_board(page, dashboard)
    questions: list[str] = []

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    row = 'tr[data-node="node-1"]'
    await page.click(f"{row} button.cordon")
    await page.wait_for_selector(f'{row}[data-state="cordoned"]')
    assert await page.inner_text(f"{row} button.cordon") == "Uncordon"
    await page.click(f"{row} button.cordon")
    await page.wait_for_selector(f'{row}[data-state="up"]')
    assert await page.inner_text(f"{row} button.cordon") == "Cordon"
    assert [q.split("?")[0] for q in questions] == ["Cordon node-1", "Uncordon node-1"]
    await page.wait_for_selector('#events li[data-node="node-1"][data-kind="uncordoned"]')


async def test_restart_button_restarts_the_node(
    page: Page, dashboard: Dashboard, geth_cluster: GethCluster
) -> None:
    """Restart (confirmed) on node-2 gives it a new process, and the events list shows its
    drain-restart-resync steps up to `up`, reason operator."""
    spec = geth_cluster.spec("node-2")
    pid_before = geth_cluster.runtime.pid(spec)
    await open_board(page, dashboard)
    page.once("dialog", lambda dialog: dialog.accept())
    try:
        await page.click('tr[data-node="node-2"] button.restart')
        await page.wait_for_selector(
            '#events li[data-node="node-2"][data-kind="restarting"][data-reason="operator"]',
            timeout=RESTART_WAIT_MS,
        )
        await screenshot(page, "dashboard-restarting")
        await page.wait_for_selector(
            '#events li[data-node="node-2"][data-kind="up"][data-reason="operator"]',
            timeout=RESTART_WAIT_MS,
        )
    finally:
        await wait_following(geth_cluster, 60.0)
    pid_after = geth_cluster.runtime.pid(spec)
    kinds = await page.locator('#events li[data-node="node-2"]').evaluate_all(
        "items => items.map(i => i.dataset.kind).reverse()"
    )
    assert kinds == ["draining", "restarting", "syncing", "up"]
    assert pid_after is not None
    assert pid_after != pid_before
