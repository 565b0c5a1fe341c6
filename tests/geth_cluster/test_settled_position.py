"""A head read between a block's import and the pending rebuild is asked again, from a real
HTTP server that answers as geth does in that gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from geth_cluster.node_rpc import (
    STALE_REASK_PAUSE_S,
    STALE_SETTLE_S,
    ChainPosition,
    settled_chain_position,
)

HEAD = 100


class _Node:
    """Answers the head batch with a pending block at the head for the first `stale_asks`
    asks, then one past it; counts the asks."""

    def __init__(self) -> None:
        self.stale_asks = 0
        self.asks = 0
        self.answers = 1_000  # asks answered; the later ones get an HTTP 500

    async def handle(self, request: web.Request) -> web.Response:
        batch: list[dict[str, Any]] = await request.json()
        self.asks += 1
        if self.asks > self.answers:
            return web.Response(status=500)
        pending = HEAD if self.asks <= self.stale_asks else HEAD + 1
        results = {"eth_blockNumber": hex(HEAD), "eth_getBlockByNumber": {"number": hex(pending)}}
        return web.json_response(
            [{"jsonrpc": "2.0", "id": c["id"], "result": results[c["method"]]} for c in batch]
        )


@pytest_asyncio.fixture(loop_scope="session")
async def node_url() -> AsyncIterator[tuple[_Node, str]]:
    """A fake node over real HTTP and its address."""
    node = _Node()
    app = web.Application()
    app.router.add_post("/", node.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield node, str(server.make_url("/"))
    finally:
        await server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One HTTP client for the module's asks."""
    async with httpx.AsyncClient() as http:
        yield http


async def _settle(
    node_url: tuple[_Node, str], client: httpx.AsyncClient, stale_asks: int, answers: int = 1_000
) -> tuple[ChainPosition, int]:
    """The settled position of a node stale for `stale_asks` asks that answers `answers`
    of them, and how many asks it took."""
    node, url = node_url
    node.asks, node.stale_asks, node.answers = 0, stale_asks, answers
    position = await settled_chain_position(client, url, timeout_s=1.0)
    return position, node.asks


async def test_a_pending_state_rebuilt_a_moment_later_is_not_stale(
    node_url: tuple[_Node, str], client: httpx.AsyncClient
) -> None:
    """A pending at the head on the first ask and past it on the second reads as fresh."""
    position, asks = await _settle(node_url, client, stale_asks=1)
    assert not position.pending_is_stale
    assert asks == 2


async def test_a_pending_state_that_stays_at_the_head_is_stale(
    node_url: tuple[_Node, str], client: httpx.AsyncClient
) -> None:
    """A pending still at the head after STALE_SETTLE_S of re-asks is reported stale."""
    position, asks = await _settle(node_url, client, stale_asks=1_000)
    assert position.pending_is_stale
    assert 2 <= asks <= 1 + STALE_SETTLE_S / STALE_REASK_PAUSE_S


async def test_a_fresh_pending_state_is_asked_once(
    node_url: tuple[_Node, str], client: httpx.AsyncClient
) -> None:
    """A pending past the head costs one ask."""
    position, asks = await _settle(node_url, client, stale_asks=0)
    assert not position.pending_is_stale
    assert asks == 1


async def test_a_re_ask_that_fails_leaves_the_first_answer_standing(
    node_url: tuple[_Node, str], client: httpx.AsyncClient
) -> None:
    """A node that answers once, stale, then errs: the stale answer, not an error."""
    position, asks = await _settle(node_url, client, stale_asks=1_000, answers=1)
    assert position.pending_is_stale
    assert asks == 2
