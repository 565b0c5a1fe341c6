"""The bench keeps each service's counters at the end of a cell, from a real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from devstack.stack import Shape
from loadtests.metrics_snapshot import save_metrics
from loadtests.systems import System, _metrics_urls
from service_kit.ports import free_port

EXPOSITION = "# TYPE ethgw_spread_sends_total counter\nethgw_spread_sends_total 7.0\n"


@pytest_asyncio.fixture(loop_scope="session")
async def metrics_server() -> AsyncIterator[str]:
    """A server whose /metrics answers EXPOSITION and whose /broken answers 500."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=EXPOSITION)

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/broken", broken)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_each_services_counters_are_written_under_the_cell(
    metrics_server: str, tmp_path: Path
) -> None:
    """A scraped service's exposition lands in {cell}.{service}.metrics.txt as served."""
    files = await save_metrics({"provider-1": metrics_server + "/metrics"}, tmp_path, "cell-a")
    assert files == [tmp_path / "cell-a.provider-1.metrics.txt"]
    assert files[0].read_text() == EXPOSITION


async def test_a_service_that_does_not_answer_gets_a_file_saying_why(
    metrics_server: str, tmp_path: Path
) -> None:
    """An error status or a refused connection is written down, and the other files still are."""
    urls = {
        "gateway": metrics_server + "/broken",
        "read-1": f"http://127.0.0.1:{free_port()}/metrics",
        "provider-1": metrics_server + "/metrics",
    }
    files = await save_metrics(urls, tmp_path, "cell-b")
    assert "HTTP 500" in files[0].read_text()
    assert files[1].read_text().startswith("# not scraped:")
    assert files[2].read_text() == EXPOSITION


def test_the_metrics_urls_are_the_ports_ethgw_up_gives_its_services() -> None:
    """Gateway on the base, the provider, read and write instances at their offsets."""
    urls = _metrics_urls(Shape(nodes=3), 12_000)
    assert urls["gateway"] == "http://127.0.0.1:12000/metrics"
    assert urls["provider-1"] == "http://127.0.0.1:12200/metrics"
    assert set(urls) == {"gateway", "provider-1", "read-1", "read-2", "write-1", "write-2"}


def test_a_system_without_ethgw_services_has_no_metrics_urls() -> None:
    """The monolith (no stack shape) has no ethgw services to scrape."""
    assert System("x", "u", "k", Path("."), []).metrics_urls == {}
