"""Recycle requests against a fake cluster manager (a real aiohttp server on a local port):
what is posted, the cool-down, and a 409 taken as done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import uvicorn
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ethgw_wire.request_auth import SignedRequestsOnly, ensure_request_key
from provider.recycle_requests import RecycleRequests
from service_kit.ports import free_port

COOLDOWN_S = 60.0


class FakeManager:
    """Answers POST /nodes/{id}/restart with `status` and records the node ids asked."""

    def __init__(self) -> None:
        self.status = 202
        self.asked: list[str] = []
        app = web.Application()
        app.router.add_post("/nodes/{node_id}/restart", self._restart)
        self.server = TestServer(app)

    async def _restart(self, request: web.Request) -> web.Response:
        self.asked.append(request.match_info["node_id"])
        return web.json_response({"status": "started"}, status=self.status)

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))


@pytest_asyncio.fixture(loop_scope="session")
async def manager() -> AsyncIterator[FakeManager]:
    fake = FakeManager()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def requests(manager: FakeManager) -> AsyncIterator[RecycleRequests]:
    sender = RecycleRequests(manager.url, COOLDOWN_S)
    try:
        yield sender
    finally:
        await sender.close()


def _counted(node_id: str) -> float:
    value = REGISTRY.get_sample_value("ethgw_provider_recycle_requests_total", {"node": node_id})
    return value or 0.0


async def test_a_request_posts_the_managers_restart_route(
    manager: FakeManager, requests: RecycleRequests
) -> None:
    """The named node is asked to restart through POST /nodes/{id}/restart."""
    requests.request("node-2", now=100.0, lbh=-0.2)
    await requests.join()
    assert manager.asked == ["node-2"]


async def test_a_second_request_within_the_cooldown_posts_nothing(
    manager: FakeManager, requests: RecycleRequests
) -> None:
    """One node is asked at most once per cool-down; after it, again."""
    for now in (100.0, 100.0 + COOLDOWN_S / 2, 100.0 + COOLDOWN_S):
        requests.request("node-2", now=now, lbh=-0.2)
        await requests.join()
    assert manager.asked == ["node-2", "node-2"]


async def test_the_cooldown_is_per_node(manager: FakeManager, requests: RecycleRequests) -> None:
    """Asking for one node does not hold back a request for another."""
    requests.request("node-1", now=100.0, lbh=-0.2)
    requests.request("node-2", now=100.0, lbh=-0.2)
    await requests.join()
    assert sorted(manager.asked) == ["node-1", "node-2"]


async def test_a_restart_already_running_counts_as_done(
    manager: FakeManager, requests: RecycleRequests
) -> None:
    """A 409 (a restart under way) is not asked again within the cool-down."""
    manager.status = 409
    requests.request("node-2", now=100.0, lbh=-0.2)
    await requests.join()
    requests.request("node-2", now=101.0, lbh=-0.2)
    await requests.join()
    assert manager.asked == ["node-2"]


async def test_a_refused_request_is_asked_again_next_time(
    manager: FakeManager, requests: RecycleRequests
) -> None:
    """A request the manager did not take (a 500) leaves no cool-down behind."""
    manager.status = 500
    requests.request("node-2", now=100.0, lbh=-0.2)
    await requests.join()
    requests.request("node-2", now=101.0, lbh=-0.2)
    await requests.join()
    assert manager.asked == ["node-2", "node-2"]


async def test_a_manager_that_does_not_answer_is_asked_again_next_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection refused leaves no cool-down behind: the next request tries again."""
    sender = RecycleRequests(f"http://127.0.0.1:{free_port()}", COOLDOWN_S)
    with caplog.at_level(logging.INFO, logger="ethgw.provider"):
        for now in (100.0, 101.0):
            sender.request("node-2", now=now, lbh=-0.2)
            await sender.join()
    await sender.close()
    failed = [r for r in caplog.records if r.getMessage().startswith("recycle request failed")]
    assert len(failed) == 2


async def test_every_request_is_counted_even_without_a_manager() -> None:
    """With no manager URL, each request still counts in the metric by node."""
    before = _counted("node-7")
    sender = RecycleRequests(None, COOLDOWN_S)
    sender.request("node-7", now=100.0, lbh=-0.2)
    sender.request("node-7", now=101.0, lbh=-0.2)
    await sender.close()
    assert _counted("node-7") == before + 2


@contextlib.asynccontextmanager
async def signed_manager(asked: list[str]) -> AsyncIterator[str]:
    """A manager's restart route behind the manager's own check (SignedRequestsOnly), served
    by uvicorn on a local port: what it takes, it records."""

    async def restart(request: Request) -> JSONResponse:
        asked.append(request.path_params["node_id"])
        return JSONResponse({"status": "started"}, status_code=202)

    app = Starlette(routes=[Route("/nodes/{node_id}/restart", restart, methods=["POST"])])
    app.add_middleware(SignedRequestsOnly, key=ensure_request_key())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_a_request_is_signed_so_the_real_check_takes_it() -> None:
    """The manager takes signed calls only: the provider's request passes its check, and an
    unsigned post of the same route does not."""
    asked: list[str] = []
    async with signed_manager(asked) as url:
        sender = RecycleRequests(url, COOLDOWN_S)
        try:
            sender.request("node-5", now=100.0, lbh=-0.2)
            await sender.join()
        finally:
            await sender.close()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/nodes/node-6/restart") as unsigned,
        ):
            assert unsigned.status == 401
    assert asked == ["node-5"]
