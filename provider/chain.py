"""Talking to the nodes: one AsyncWeb3 client per node, raw RPC, JSON-safe results,
and the translation of web3's and aiohttp's errors into task errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from common.contracts import decode_custom_error
from provider.errors import InsufficientFundsError, RevertedError, TaskError

Client = AsyncWeb3[AsyncHTTPProvider]

# Errors that mean "this node did not answer", as opposed to "the node said no".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


class NodeClients:
    """AsyncWeb3 clients by RPC URL, made on first use and closed at shutdown."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clients: dict[str, Client] = {}

    def get(self, url: str) -> Client:
        client = self._clients.get(url)
        if client is None:
            # web3's own retries are off: the provider retries on another node instead.
            provider = AsyncHTTPProvider(
                url, request_kwargs={"timeout": self._timeout}, exception_retry_configuration=None
            )
            client = AsyncWeb3(provider)
            self._clients[url] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.provider.disconnect()
        self._clients.clear()


async def rpc(w3: Client, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call; an error object becomes a TaskError with the node's message."""
    response = await w3.provider.make_request(method, params)
    if "error" in response:
        error = response["error"]
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        raise TaskError(f"{method}: {message}")
    return to_json(response.get("result"))


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
