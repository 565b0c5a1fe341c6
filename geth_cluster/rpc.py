"""A minimal async JSON-RPC client for the node checks the cluster itself makes."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from geth_cluster.errors import NodeUnreachableError, RpcError

_ids = itertools.count(1)


async def rpc_call(
    client: httpx.AsyncClient, url: str, method: str, params: list[Any] | None = None
) -> Any:
    """Call one method; raise NodeUnreachableError or RpcError instead of httpx errors."""
    payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or []}
    try:
        response = await client.post(url, json=payload)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise NodeUnreachableError(f"{url} did not answer {method}: {exc!r}") from None
    body = response.json()
    if "error" in body:
        raise RpcError(int(body["error"].get("code", 0)), str(body["error"].get("message")))
    return body["result"]


async def block_number(client: httpx.AsyncClient, url: str) -> int:
    return int(await rpc_call(client, url, "eth_blockNumber"), 16)


async def peer_count(client: httpx.AsyncClient, url: str) -> int:
    return int(await rpc_call(client, url, "net_peerCount"), 16)
