"""The dashboard's page and data endpoint at the gateway, with the fake manager (the real
manager and a real browser are in tests/dashboard)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from service_kit.ports import free_port
from tests.gateway.conftest import Gateway, StartGateway
from tests.gateway.servers import FakeManager, ServerThread

PROVIDER_METRICS = """\
# TYPE ethgw_provider_inflight gauge
ethgw_provider_inflight{node="node-1"} 4.0
# TYPE ethgw_provider_cache_requests_total counter
ethgw_provider_cache_requests_total{cache="block",result="hit"} 3.0
ethgw_provider_cache_requests_total{cache="block",result="miss"} 1.0
"""


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[str]:
    """A provider's /metrics page with 4 tasks in flight on node-1 and 3 block cache hits of 4."""
    app = FastAPI()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(PROVIDER_METRICS)

    server = ServerThread(app)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def dashboard_gateway(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> Gateway:
    """A gateway whose Kafka is a port where nothing listens."""
    monkeypatch.setenv("ETHGW_KAFKA_PORT", str(free_port()))
    return await start_gateway(kafka_lag_timeout_s=1.0)


async def test_page_is_served_without_a_key(dashboard_gateway: Gateway) -> None:
    """GET /dashboard answers the HTML shell to anyone: it holds no data."""
    async with dashboard_gateway.client(None) as client:
        response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="key-form"' in response.text


async def test_page_runs_only_its_own_script(dashboard_gateway: Gateway) -> None:
    """The page's Content-Security-Policy allows scripts and calls to its own origin only."""
    async with dashboard_gateway.client(None) as client:
        response = await client.get("/dashboard")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy


async def test_script_is_served_as_javascript(dashboard_gateway: Gateway) -> None:
    """The page's script ships in the package and is served with its type."""
    async with dashboard_gateway.client(None) as client:
        response = await client.get("/dashboard/dashboard.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "/admin/dashboard" in response.text


async def test_unknown_asset_is_refused(dashboard_gateway: Gateway) -> None:
    """Only the page's own files are served: any other name is a 4xx naming the field."""
    async with dashboard_gateway.client(None) as client:
        response = await client.get("/dashboard/..%2Fkeys.py")
    assert 400 <= response.status_code < 500


async def test_data_needs_an_admin_key(dashboard_gateway: Gateway) -> None:
    """No key is 401 and a user key 403."""
    async with dashboard_gateway.client(None) as anonymous:
        assert (await anonymous.get("/admin/dashboard")).status_code == 401
    async with dashboard_gateway.client("user") as user:
        assert (await user.get("/admin/dashboard")).status_code == 403


async def test_data_has_the_managers_nodes(
    dashboard_gateway: Gateway, manager: FakeManager
) -> None:
    """The cluster part is the manager's snapshot, as GET /admin/cluster shows it."""
    async with dashboard_gateway.client("admin") as admin:
        response = await admin.get("/admin/dashboard")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [n["node_id"] for n in data["cluster"]["nodes"]] == ["node-1", "node-2"]
    assert data["cluster"]["nodes"][1]["status"] == "cordoned"


async def test_parts_the_manager_lacks_are_named_missing(
    dashboard_gateway: Gateway, manager: FakeManager
) -> None:
    """A manager without /lbh and /events still gives a dashboard; the parts say why empty."""
    async with dashboard_gateway.client("admin") as admin:
        data = (await admin.get("/admin/dashboard")).json()["data"]
    assert set(data["missing"]) == {"lbh", "events"}
    assert data["lbh"]["points"] == []
    assert data["events"] == []


async def test_unreachable_kafka_is_a_reason_not_a_failure(
    dashboard_gateway: Gateway, manager: FakeManager
) -> None:
    """With no broker, the lag is unknown (None) with the reason, and the rest is served."""
    async with dashboard_gateway.client("admin") as admin, asyncio.timeout(20):
        while True:  # the first answers say "not measured yet" until a measurement ends
            response = await admin.get("/admin/dashboard")
            assert response.status_code == 200
            kafka = response.json()["data"]["kafka"]
            if kafka["error"] != "not measured yet":
                break
            await asyncio.sleep(0.2)
    assert kafka["total"] is None
    assert "Kafka" in kafka["error"] or "Error" in kafka["error"]


async def test_manager_down_is_503(
    start_gateway: StartGateway, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the manager there is no cluster to show: 503 with the envelope."""
    monkeypatch.setenv("ETHGW_KAFKA_PORT", str(free_port()))
    gateway = await start_gateway(manager_url=dead_url)
    async with gateway.client("admin") as admin:
        response = await admin.get("/admin/dashboard")
    assert response.status_code == 503
    assert response.json()["error"]["code"]


async def test_inflight_comes_from_the_providers_metrics(
    start_gateway: StartGateway,
    manager: FakeManager,
    fake_provider: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a provider URL set, a node the manager gives no in_flight gets the providers' gauge,
    and each read cache's hit ratio is the providers' hits over their reads."""
    monkeypatch.setenv("ETHGW_KAFKA_PORT", str(free_port()))
    gateway = await start_gateway(provider_urls=(fake_provider,))
    async with gateway.client("admin") as admin, asyncio.timeout(20):
        while True:  # the first answer comes before the first reading
            data = (await admin.get("/admin/dashboard")).json()["data"]
            if data["providers"]["answered"] is not None:
                break
            await asyncio.sleep(0.2)
        data = (await admin.get("/admin/dashboard")).json()["data"]
    # node-2 keeps the 3 the manager itself reports; node-1 had none, so it gets 4.
    assert [n["in_flight"] for n in data["cluster"]["nodes"]] == [4, 3]
    block_cache = {"hits": 3, "misses": 1, "hit_ratio": 0.75}
    assert data["providers"] == {
        "configured": 1,
        "answered": 1,
        "failed": [],
        "cache": {"block": block_cache},
    }
