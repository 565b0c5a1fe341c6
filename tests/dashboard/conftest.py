"""Fixtures of the dashboard's browser tests: a real cluster manager (on the session's Geth
cluster) and a real gateway, both served over HTTP in the session's event loop, and Debian's
chromium driven by playwright.

The manager runs in the session loop, not in a thread, because it restarts nodes of the
session cluster, whose processes belong to that loop. It publishes nothing (`publish` off):
its states must not reach the node-states topic that other tests' providers read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from balancer import RecycleState
from ethgw_wire.http_api import API_KEY_HEADER
from ethgw_wire.settings import KafkaSettings
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.keys import create_key, read_admin_key
from geth_cluster.api import create_app as create_manager_api
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.manager import ClusterManager, open_manager

CHROMIUM = Path("/usr/bin/chromium")
# The flags that work on this kind of machine (no GPU, no sandbox as root, no network
# beyond loopback); playwright adds a fresh empty --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "results" / "dashboard"
WAIT_MS = 30_000  # a loaded 2-core machine: generous waits, always for a condition


class LoopServer(uvicorn.Server):
    """uvicorn on a socket bound up front, as a task of the running loop (no signal handlers:
    pytest owns them)."""

    def __init__(self, app: Any) -> None:
        super().__init__(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
        )
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def __aenter__(self) -> LoopServer:
        self._task = asyncio.create_task(self.serve(sockets=[self.socket]))
        async with asyncio.timeout(60):
            while not self.started:
                if self._task.done():
                    raise RuntimeError(f"server {self.url} stopped while starting")
                await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.should_exit = True
        if self._task is not None:
            await self._task
        self.socket.close()


@dataclass
class Dashboard:
    """A gateway in front of a real manager; `manager` is the running manager itself."""

    url: str
    admin_key: str
    user_key: str
    manager: ClusterManager

    @property
    def page_url(self) -> str:
        return f"{self.url}/dashboard"

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {API_KEY_HEADER: key} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, trust_env=False)


@asynccontextmanager
async def dashboard_stack(
    cluster: GethCluster,
    kafka: KafkaSettings,
    settings: ManagerSettings,
    state_dir: Path,
    recycle_state: RecycleState | None = None,
) -> AsyncIterator[Dashboard]:
    """The manager's operator API and a gateway pointed at it, both over real HTTP."""
    held: list[ClusterManager] = []

    @asynccontextmanager
    async def open_service() -> AsyncIterator[ClusterManager]:
        async with open_manager(cluster, kafka, settings, recycle_state=recycle_state) as running:
            held.append(running)
            yield running

    user_key = create_key(state_dir, "viewer", "user")
    gateway_settings = GatewaySettings(state_dir=state_dir, manager_url="http://unset")
    async with LoopServer(create_manager_api(open_service)) as manager_server:
        gateway_settings = gateway_settings.model_copy(update={"manager_url": manager_server.url})
        async with LoopServer(create_gateway(gateway_settings, kafka)) as gateway_server:
            admin_key = read_admin_key(state_dir)
            assert admin_key is not None
            yield Dashboard(gateway_server.url, admin_key, user_key, held[0])
    print(f"\ndashboard figure: {data_latency_figure()}")


def data_latency_figure() -> str:
    """The gateway's own timing of GET /admin/dashboard so far (the page calls it every
    second): a figure to print, never asserted."""
    from gateway.metrics import LATENCY

    totals = {"_sum": 0.0, "_count": 0.0}
    for metric in LATENCY.collect():
        for sample in metric.samples:
            suffix = sample.name.removeprefix(metric.name)
            if sample.labels.get("route") == "/admin/dashboard" and suffix in totals:
                totals[suffix] += sample.value
    count = int(totals["_count"])
    mean_ms = 1000.0 * totals["_sum"] / count if count else float("nan")
    return f"GET /admin/dashboard: {count} calls, mean {mean_ms:.1f} ms"


def quiet_manager(**overrides: Any) -> ManagerSettings:
    """Two ticks a second, nothing published, no automatic recycling unless asked."""
    options: dict[str, Any] = {
        "sample_interval_s": 0.5,
        "rpc_timeout_s": 0.4,
        "publish": False,
        "recycle": False,
        "drain_s": 0.5,
        "resync_timeout_s": 60.0,
    }
    options.update(overrides)
    return ManagerSettings(**options)


def installed_chromium() -> Path:
    """The browser's path; a clear failure, not a skip, when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, for the whole session (`make browser` installs it)."""
    executable = installed_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(chromium: Browser) -> AsyncIterator[Page]:
    """A fresh tab with empty storage (no key remembered), 1280x900."""
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def open_with_key(page: Page, dashboard: Dashboard, key: str) -> None:
    """Load the page, enter `key` in its form and submit."""
    await page.goto(dashboard.page_url)
    await page.fill("#key", key)
    await page.click("#key-form button[type=submit]")


async def open_board(page: Page, dashboard: Dashboard) -> None:
    """The page opened with the admin key, once its node table has rows."""
    await open_with_key(page, dashboard, dashboard.admin_key)
    await page.wait_for_selector("#nodes tbody tr[data-node]")


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under results/dashboard/ (git-ignored) for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
