"""A minimal async JSON-RPC client for the node checks the cluster itself makes.

A node's address is an HTTP URL, or `ipc://<socket path>` for the sealer, which serves no
HTTP at all (its account is unlocked to seal, and geth would let any HTTP caller send
transactions from it: `ipc_url`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from geth_cluster.errors import NodeUnreachableError, RpcError

_ids = itertools.count(1)

IPC_SCHEME = "ipc://"
IPC_TIMEOUT_S = 3.0  # as the cluster's HTTP client
IPC_MAX_ANSWER_BYTES = 16 * 2**20


def ipc_url(socket_path: Path) -> str:
    """The address of a node served over its IPC socket only."""
    return f"{IPC_SCHEME}{socket_path}"


async def rpc_call(
    client: httpx.AsyncClient, url: str, method: str, params: list[Any] | None = None
) -> Any:
    """Call one method; raise NodeUnreachableError or RpcError instead of httpx errors."""
    payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or []}
    return _result(await _post(client, url, payload, method))


async def _post(client: httpx.AsyncClient, url: str, payload: Any, what: str) -> Any:
    if url.startswith(IPC_SCHEME):
        return await _ipc_exchange(url.removeprefix(IPC_SCHEME), payload, what)
    try:
        response = await client.post(url, json=payload)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise NodeUnreachableError(f"{url} did not answer {what}: {exc!r}") from None
    return response.json()


async def _ipc_exchange(socket_path: str, payload: Any, what: str) -> Any:
    """One request on a connection of its own: geth answers each JSON value it reads with
    one JSON value and a newline."""
    try:
        async with asyncio.timeout(IPC_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(
                socket_path, limit=IPC_MAX_ANSWER_BYTES
            )
            try:
                writer.write(json.dumps(payload).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                await writer.wait_closed()
        return json.loads(line)
    except (OSError, TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
        raise NodeUnreachableError(f"ipc://{socket_path} did not answer {what}: {exc!r}") from None


def _result(answer: dict[str, Any]) -> Any:
    if "error" in answer or "result" not in answer:
        error = answer.get("error") or {}
        raise RpcError(int(error.get("code", 0)), str(error.get("message")))
    return answer["result"]


async def block_number(client: httpx.AsyncClient, url: str) -> int:
    return int(await rpc_call(client, url, "eth_blockNumber"), 16)


@dataclass(frozen=True)
class ChainPosition:
    """A node's head, and the block number its pending state is being built for."""

    head: int
    pending: int | None  # None when the node built no pending block

    @property
    def pending_is_stale(self) -> bool:
        """The pending state lags the head: geth has just caught up by a sync and rebuilds
        pending only at its next new head, so estimates and nonces taken now come from the
        old state (a contract deployed since looks absent)."""
        return self.pending is not None and self.pending <= self.head


async def chain_position(client: httpx.AsyncClient, url: str) -> ChainPosition:
    """Head and pending block in one batch request, so both describe the same moment."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber", "params": ["pending", False]},
    ]
    answers = {item.get("id"): item for item in await _post(client, url, batch, "a head read")}
    head = int(_result(answers.get(1, {})), 16)
    pending_block = answers.get(2, {}).get("result")
    pending = int(pending_block["number"], 16) if isinstance(pending_block, dict) else None
    return ChainPosition(head, pending)


# Geth rebuilds a follower's pending block a few milliseconds after each import (more on a
# busy machine), so a head read in that gap shows a pending state at the head. A pending that
# is still stale a beat later is a real one (a node just caught up by a sync keeps it until
# its next new head).
STALE_REASK_PAUSE_S = 0.1
STALE_SETTLE_S = 0.4
"""How long a stale-looking pending state is asked about again, at most: with the first
ask's timeout, well inside the manager's 1 s tick."""


async def settled_chain_position(
    client: httpx.AsyncClient, url: str, timeout_s: float
) -> ChainPosition:
    """chain_position, asked again every STALE_REASK_PAUSE_S for up to STALE_SETTLE_S while
    the pending state looks stale, so the gap between a block's import and its pending
    rebuild is not taken for staleness. The first ask is bounded by `timeout_s`; a re-ask
    that fails or runs out of time leaves the last answer standing."""
    async with asyncio.timeout(timeout_s):
        position = await chain_position(client, url)
    deadline = asyncio.get_running_loop().time() + STALE_SETTLE_S
    with contextlib.suppress(TimeoutError, NodeUnreachableError, RpcError):
        async with asyncio.timeout_at(deadline):
            while position.pending_is_stale:
                await asyncio.sleep(STALE_REASK_PAUSE_S)
                position = await chain_position(client, url)
    return position


async def peer_count(client: httpx.AsyncClient, url: str) -> int:
    return int(await rpc_call(client, url, "net_peerCount"), 16)
