"""The provider's node clients keep their connections: one TCP connection serves call
after call, where web3's own HTTP provider opened a new one for each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request

from provider.chain import NodeClients
from service_kit.ports import free_port
from service_kit.serving import draining_server


@dataclass
class FakeNode:
    """A JSON-RPC endpoint that notes the client port of every call."""

    url: str
    client_ports: list[int] = field(default_factory=list)


def _node_app(node: FakeNode) -> FastAPI:
    app = FastAPI()

    @app.post("/")
    async def answer(request: Request) -> dict[str, Any]:
        assert request.client is not None
        node.client_ports.append(request.client.port)
        body = await request.json()
        return {"jsonrpc": "2.0", "id": body["id"], "result": "0x2a"}

    return app


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    port = free_port()
    fake = FakeNode(f"http://127.0.0.1:{port}/")
    server = draining_server(_node_app(fake), "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn's flags have no event)
        await asyncio.sleep(0.01)
    yield fake
    server.should_exit = True
    await task


async def test_calls_to_a_node_share_one_connection(node: FakeNode) -> None:
    """Three calls in a row reach the node from the same client port."""
    clients = NodeClients(timeout_s=5.0)
    try:
        for _ in range(3):
            assert await clients.get(node.url).request("eth_blockNumber", []) == "0x2a"
    finally:
        await clients.close()
    assert len(node.client_ports) == 3
    assert len(set(node.client_ports)) == 1


async def test_web3_calls_go_through_the_same_client(node: FakeNode) -> None:
    """web3's own calls (w3.eth) use the kept connection too."""
    clients = NodeClients(timeout_s=5.0)
    try:
        w3 = clients.get(node.url).web3
        assert await w3.eth.block_number == 42
        assert await w3.eth.block_number == 42
    finally:
        await clients.close()
    assert len(set(node.client_ports)) == 1
