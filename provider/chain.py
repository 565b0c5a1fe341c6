"""Talking to the nodes: one AsyncWeb3 client per node over a shared keep-alive
session, raw RPC, JSON-safe results, and the translation of web3's and aiohttp's
errors into task errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from web3 import AsyncWeb3, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from ethgw_wire.artifacts import decode_custom_error
from provider.errors import InsufficientFundsError, RevertedError, TaskError


class KeepAliveProvider(AsyncJSONBaseProvider):
    """web3's JSON-RPC over HTTP on a session that keeps its connections.

    web3's AsyncHTTPProvider opens a new TCP connection for every request (its session's
    connector has force_close) and takes a thread-pool lock around its session cache on
    every request. Measured on node-1: 1.0 ms for an eth_blockNumber against 0.5 ms on a
    kept connection; in the provider, a read's execution went from 3.0 to 1.8 ms at the
    p50 (docs/benchmarks.md, micro-benchmarks). No retries here either: the provider
    retries on another node instead.
    """

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        super().__init__()
        self.endpoint_uri = url
        self._session = session

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self.encode_rpc_request(method, params)
        async with self._session.post(self.endpoint_uri, data=body, headers=_JSON) as response:
            response.raise_for_status()
            raw = await response.read()
        return self.decode_rpc_response(raw)


_JSON = {"Content-Type": "application/json"}

Client = AsyncWeb3[KeepAliveProvider]

# Errors that mean "this node did not answer", as opposed to "the node said no".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


class NodeClients:
    """AsyncWeb3 clients by RPC URL, made on first use, sharing one keep-alive session
    (closed at shutdown)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, Client] = {}

    def get(self, url: str) -> Client:
        client = self._clients.get(url)
        if client is None:
            client = AsyncWeb3(KeepAliveProvider(url, self._shared_session()))
            self._clients[url] = client
        return client

    def _shared_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No connection limit of its own: the dispatcher's concurrency bounds the calls.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        self._clients.clear()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


async def rpc(w3: Client, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call; an error object becomes a TaskError with the node's message."""
    response = await w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in response:
        error = response["error"]
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        raise TaskError(f"{method}: {message}")
    return response.get("result")  # parsed JSON: already JSON-safe


def to_json(value: Any) -> Any:
    """web3's AttributeDicts and HexBytes as plain JSON values."""
    return json.loads(Web3.to_json(value))


def is_indexing(exc: BaseException) -> bool:
    """Geth >= 1.13.11 answers receipts with this while it indexes: it means wait."""
    return "indexing is in progress" in str(exc)


def translate_revert(exc: Exception, abi: list[dict[str, Any]] | None = None) -> TaskError:
    """A revert or a refusal of the node as a task error with a readable reason."""
    data = getattr(exc, "data", None)
    if isinstance(exc, ContractCustomError | ContractLogicError) and isinstance(data, str) and abi:
        decoded = decode_custom_error(abi, data)
        if decoded is not None:
            args = ", ".join(f"{k}={v}" for k, v in decoded.args.items())
            return RevertedError(f"the contract refused: {decoded.name}({args})")
    message = getattr(exc, "message", None) or str(exc)
    if "insufficient funds" in message:
        return InsufficientFundsError(f"the signer cannot pay for gas and value: {message}")
    if isinstance(exc, ContractLogicError | ContractCustomError):
        return RevertedError(f"the contract refused: {message}")
    if isinstance(exc, Web3RPCError) and _is_execution_failure(message):
        # The EVM could not run the caller's code or call (estimateGas says so): the
        # request's fault, like a revert, not the platform's.
        return RevertedError(f"the transaction cannot execute: {message}")
    if isinstance(exc, Web3RPCError):
        return TaskError(f"the node refused: {message}")
    return TaskError(message)


# geth's EVM and gas-estimation errors (core/vm/errors.go, eth/gasestimator): the code or
# the call fails on every node, whatever the node's state of health.
_EXECUTION_FAILURES = (
    "invalid opcode",
    "invalid jump destination",
    "stack underflow",
    "stack limit reached",
    "out of gas",
    "gas required exceeds allowance",
    "intrinsic gas too low",
    "max code size exceeded",
    "max initcode size exceeded",
    "invalid code: must not begin with 0xef",
    "write protection",
    "return data out of bounds",
    "max call depth exceeded",
    "execution reverted",
)


def _is_execution_failure(message: str) -> bool:
    return any(marker in message for marker in _EXECUTION_FAILURES)
