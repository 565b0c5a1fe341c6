"""The provider's node clients keep their connections (one TCP connection serves call
after call, where web3's own HTTP provider opened a new one for each), and type the
node's errors where they arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request

from ethgw_wire.errors import InsufficientFundsError, NodeRefusedError, RevertedError
from provider.chain import (
    AlreadyKnownError,
    IndexingError,
    NodeClients,
    NodeUnreachableError,
    NonceTooLowError,
)
from service_kit.ports import free_port
from service_kit.serving import draining_server


@dataclass
class FakeNode:
    """A JSON-RPC endpoint that notes the client port of every call; a method in
    `refusals` is answered with that error message."""

    url: str
    client_ports: list[int] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)


def _node_app(node: FakeNode) -> FastAPI:
    app = FastAPI()

    @app.post("/")
    async def answer(request: Request) -> dict[str, Any]:
        assert request.client is not None
        node.client_ports.append(request.client.port)
        body = await request.json()
        refusal = node.refusals.get(body["method"])
        if refusal is not None:
            error = {"code": -32000, "message": refusal}
            return {"jsonrpc": "2.0", "id": body["id"], "error": error}
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


async def _refusal_of(node: FakeNode, method: str, message: str, raw_tx: bool = False) -> Exception:
    """What the client raises when the node answers `method` with `message`."""
    node.refusals[method] = message
    client = NodeClients(timeout_s=5.0)
    try:
        if raw_tx:
            await client.get(node.url).send_raw_transaction("0x00")
        else:
            await client.get(node.url).request(method, [])
    except Exception as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError("the call did not fail")


async def test_an_error_object_becomes_a_refusal_with_the_nodes_message(node: FakeNode) -> None:
    """Any JSON-RPC error is a NodeRefusedError naming the method and the node's message."""
    error = await _refusal_of(node, "eth_call", "execution reverted")
    assert type(error) is NodeRefusedError
    assert str(error) == "eth_call: execution reverted"


async def test_indexing_is_typed(node: FakeNode) -> None:
    """Geth's "indexing is in progress" arrives as IndexingError."""
    error = await _refusal_of(
        node, "eth_getTransactionReceipt", "transaction indexing is in progress"
    )
    assert isinstance(error, IndexingError)


async def test_a_transaction_the_node_holds_is_typed(node: FakeNode) -> None:
    """ "already known" and "nonce too low" arrive as their own types."""
    known = await _refusal_of(node, "eth_sendRawTransaction", "already known", raw_tx=True)
    low = await _refusal_of(node, "eth_sendRawTransaction", "nonce too low: 3 < 4", raw_tx=True)
    assert isinstance(known, AlreadyKnownError)
    assert isinstance(low, NonceTooLowError)


async def test_a_refused_transaction_says_why(node: FakeNode) -> None:
    """A broadcast refused for funds or for its code fails with the task error that says so."""
    poor = await _refusal_of(
        node, "eth_sendRawTransaction", "insufficient funds for gas * price + value", raw_tx=True
    )
    broken = await _refusal_of(node, "eth_sendRawTransaction", "invalid opcode", raw_tx=True)
    assert isinstance(poor, InsufficientFundsError)
    assert isinstance(broken, RevertedError)


async def test_a_node_that_does_not_answer_is_unreachable() -> None:
    """A refused connection arrives as NodeUnreachableError, naming the connection's error."""
    client = NodeClients(timeout_s=2.0)
    try:
        with pytest.raises(NodeUnreachableError) as caught:
            await client.get(f"http://127.0.0.1:{free_port()}/").request("eth_blockNumber", [])
    finally:
        await client.close()
    assert caught.value.kind == "ClientConnectorError"
