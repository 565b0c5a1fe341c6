"""The services' server: a drain on shutdown, so a call on a kept-alive connection is answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvloop
from fastapi import FastAPI

from service_kit.ports import free_port
from service_kit.serving import DrainingServer, draining_server


@dataclass
class Running:
    server: DrainingServer
    task: asyncio.Task[None]
    url: str


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    port = free_port()
    server = draining_server(_app(), "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn's flags have no event)
        await asyncio.sleep(0.01)
    yield Running(server, task, f"http://127.0.0.1:{port}")
    server.should_exit = True
    await task


async def _until_draining(server: DrainingServer) -> None:
    server.should_exit = True
    while not server.draining:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_a_kept_alive_connection_is_answered_while_draining(running: Running) -> None:
    """A call sent on a pooled connection after SIGTERM gets its answer, not a cut."""
    async with httpx.AsyncClient(base_url=running.url, trust_env=False) as client:
        assert (await client.get("/ping")).status_code == 200
        await _until_draining(running.server)
        answer = await client.get("/ping")
    assert answer.status_code == 200


async def test_answers_while_draining_close_their_connection(running: Running) -> None:
    """Each answer in the drain says Connection: close, so the client reconnects."""
    async with httpx.AsyncClient(base_url=running.url, trust_env=False) as client:
        await client.get("/ping")
        await _until_draining(running.server)
        answer = await client.get("/ping")
    assert answer.headers["connection"] == "close"


async def test_new_connections_are_refused_once_draining(running: Running) -> None:
    """A client that reconnects during the drain is refused: nothing sent, safe to retry."""
    async with httpx.AsyncClient(base_url=running.url, trust_env=False) as idle:
        await idle.get("/ping")  # holds the drain open
        await _until_draining(running.server)
        async with httpx.AsyncClient(base_url=running.url, trust_env=False) as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.get("/ping")


async def test_answers_before_the_drain_keep_their_connection(running: Running) -> None:
    """Outside a drain the connection stays open for the next call."""
    async with httpx.AsyncClient(base_url=running.url, trust_env=False) as client:
        answer = await client.get("/ping")
    assert answer.headers.get("connection") != "close"


def test_the_server_parses_http_with_httptools() -> None:
    """The services' server uses httptools' C parser, not h11's pure-Python one."""
    config = draining_server(_app(), "127.0.0.1", free_port()).config
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"


def test_the_server_runs_on_uvloop() -> None:
    """`serve` runs the app on uvloop's event loop, not asyncio's default one."""
    factory = draining_server(_app(), "127.0.0.1", free_port()).config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
