"""Talking to the nodes: the node client the operations use, its web3 implementation
over a shared keep-alive session, and the one place where a node's answers that are
errors (JSON-RPC error objects, web3's exceptions, a connection that fails) become
typed exceptions. Callers catch the types, never the text."""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, cast

import aiohttp
from eth_typing import BlockNumber
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3, Web3
from web3.contract import AsyncContract
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import BlockIdentifier, RPCEndpoint, RPCResponse

from ethgw_wire.artifacts import ContractArtifact, decode_custom_error
from ethgw_wire.errors import (
    InsufficientFundsError,
    NodeRefusedError,
    ReceiptTimeoutError,
    RevertedError,
    TaskError,
)


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
        return cast(RPCResponse, await self._post(self.encode_rpc_request(method, params)))

    async def make_batch_request(
        self, requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        """One HTTP request carrying a JSON-RPC batch; the answers in the requests' order
        (a node may answer a batch in any order), or the one error a refused batch gets."""
        answer = await self._post(self.encode_batch_rpc_request(requests))
        if not isinstance(answer, list):
            return cast(RPCResponse, answer)
        return sorted(
            cast(list[RPCResponse], answer), key=lambda response: int(cast(int, response["id"]))
        )

    async def _post(self, body: bytes) -> Any:
        async with self._session.post(self.endpoint_uri, data=body, headers=_JSON) as response:
            response.raise_for_status()
            raw = await response.read()
        return self.decode_rpc_response(raw)


_JSON = {"Content-Type": "application/json"}

# What a connection to a node raises when the node does not answer, as opposed to
# "the node said no": only the node client sees these; it raises NodeUnreachableError.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


# -- the node's errors, typed ---------------------------------------------------------------


class NodeUnreachableError(Exception):
    """The node did not answer (refused connection, timeout, HTTP error): try another node."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # the connection's own error class, e.g. ClientConnectorError


class IndexingError(NodeRefusedError):
    """The node is still indexing transactions (Geth >= 1.13.11): asking again later works."""


class AlreadyKnownError(NodeRefusedError):
    """The node already holds this very transaction."""


class NonceTooLowError(NodeRefusedError):
    """The transaction's nonce is taken on chain (by this transaction or another)."""


class ReplacementUnderpricedError(NodeRefusedError):
    """Another transaction with this nonce waits in the node's pool."""


# Lower-case markers of geth's answers, by the type they become.
_REFUSALS: tuple[tuple[tuple[str, ...], type[NodeRefusedError]], ...] = (
    (("indexing is in progress",), IndexingError),
    (("already known", "known transaction"), AlreadyKnownError),
    (("nonce too low",), NonceTooLowError),
    (("replacement transaction underpriced",), ReplacementUnderpricedError),
)


def _refusal(method: str, message: str) -> NodeRefusedError:
    lowered = message.lower()
    for markers, kind in _REFUSALS:
        if any(marker in lowered for marker in markers):
            return kind(f"{method}: {message}")
    return NodeRefusedError(f"{method}: {message}")


def _unreachable(exc: BaseException) -> NodeUnreachableError:
    return NodeUnreachableError(type(exc).__name__, str(exc))


# -- the seam ----------------------------------------------------------------------------------


class NodeClient(ABC):
    """What the operations need of one node. Every method raises NodeUnreachableError
    when the node does not answer and a TaskError (a NodeRefusedError, RevertedError,
    InsufficientFundsError) when it answers no."""

    url: str = ""
    """The node's RPC URL: which node this is ("" for a client of no real node)."""

    @abstractmethod
    async def request(self, method: str, params: Sequence[Any]) -> Any:
        """A raw JSON-RPC call; its result as parsed JSON."""

    async def send_raw_transaction(self, raw_tx: str) -> None:
        """Broadcast signed bytes; a refusal that is not about the transaction's
        identity (already known, nonce) says why the transaction cannot go."""
        try:
            await self.request("eth_sendRawTransaction", [raw_tx])
        except (AlreadyKnownError, NonceTooLowError, ReplacementUnderpricedError):
            raise
        except NodeRefusedError as exc:
            raise refused_transaction(exc.message) from None

    async def receipt(self, tx_hash: str, timeout_s: float) -> dict[str, Any]:
        """The receipt of a sent transaction once mined, asked for every 0.2 s;
        ReceiptTimeoutError after `timeout_s`. The provider's node clients watch blocks
        instead (provider/receipts.py)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                receipt = await self.request("eth_getTransactionReceipt", [tx_hash])
            except IndexingError:
                receipt = None
            if receipt is not None:
                return dict(receipt)
            await asyncio.sleep(0.2)
        raise ReceiptTimeoutError(f"no receipt for {tx_hash} after {timeout_s:.0f}s")

    @abstractmethod
    async def estimate_gas(
        self, tx: dict[str, Any], abi: Sequence[dict[str, Any]] | None = None
    ) -> int:
        """The gas of `tx` against the pending state; a refusal is decoded with `abi`."""

    @abstractmethod
    async def call_function(
        self,
        contract: ContractArtifact,
        address: str,
        function: str,
        args: Sequence[Any],
        block: int | None = None,
    ) -> Any:
        """What a view function of the contract at `address` returns, at `block` (None:
        "latest")."""

    async def call_functions(
        self,
        contract: ContractArtifact,
        address: str,
        calls: Sequence[tuple[str, Sequence[Any]]],
        block: int | None = None,
    ) -> list[Any]:
        """What several view functions return, in order, at `block` (None: "latest"); a node
        client that can batch them asks the node once (a page of rows is one round trip, not
        one per row)."""
        return list(
            await asyncio.gather(
                *(self.call_function(contract, address, name, args, block) for name, args in calls)
            )
        )

    @abstractmethod
    async def event_args(
        self, contract: ContractArtifact, address: str, tx_hash: str, event: str
    ) -> list[dict[str, Any]]:
        """The arguments of every `event` the contract logged in a mined transaction."""


class Web3NodeClient(NodeClient):
    """A node client over AsyncWeb3 and the shared keep-alive session."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.web3: AsyncWeb3[KeepAliveProvider] = AsyncWeb3(KeepAliveProvider(url, session))
        # Built once per contract: building one parses the whole ABI, on every call's path.
        self._contracts: dict[tuple[str, int], tuple[ContractArtifact, AsyncContract]] = {}

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = await self.web3.provider.make_request(RPCEndpoint(method), list(params))
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        if "error" in response:
            error = response["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise _refusal(method, message)
        return response.get("result")  # parsed JSON: already JSON-safe

    async def estimate_gas(
        self, tx: dict[str, Any], abi: Sequence[dict[str, Any]] | None = None
    ) -> int:
        try:
            # Against the pending state, so a write that depends on an earlier
            # write of this round (mint, then publish) estimates correctly.
            return int(await self.web3.eth.estimate_gas(tx, "pending"))  # type: ignore[arg-type]
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            raise translate_revert(exc, abi) from None

    async def call_function(
        self,
        contract: ContractArtifact,
        address: str,
        function: str,
        args: Sequence[Any],
        block: int | None = None,
    ) -> Any:
        bound = self._contract(contract, address)
        try:
            return await getattr(bound.functions, function)(*args).call(block_identifier=_at(block))
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        except (ContractCustomError, ContractLogicError) as exc:
            raise translate_revert(exc, contract.abi) from None

    async def call_functions(
        self,
        contract: ContractArtifact,
        address: str,
        calls: Sequence[tuple[str, Sequence[Any]]],
        block: int | None = None,
    ) -> list[Any]:
        """One JSON-RPC batch of eth_calls, decoded as call_function decodes one."""
        if not calls:
            return []
        bound = self._contract(contract, address)
        try:
            async with self.web3.batch_requests() as batch:
                for name, args in calls:
                    # While batching, call() makes the request's description, not the request.
                    batch.add(
                        getattr(bound.functions, name)(*args).call(block_identifier=_at(block))
                    )
                return list(await batch.async_execute())
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        except (ContractCustomError, ContractLogicError) as exc:
            raise translate_revert(exc, contract.abi) from None
        except Web3RPCError as exc:
            raise _refusal("eth_call", str(exc)) from None

    async def event_args(
        self, contract: ContractArtifact, address: str, tx_hash: str, event: str
    ) -> list[dict[str, Any]]:
        try:
            receipt = await self.web3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        logs = getattr(self._contract(contract, address).events, event)().process_receipt(receipt)
        return [dict(log["args"]) for log in logs]

    def _contract(self, contract: ContractArtifact, address: str) -> AsyncContract:
        # The artifact is kept in the value, so its id() cannot be reused by another one.
        key = (address, id(contract))
        known = self._contracts.get(key)
        if known is None:
            bound = self.web3.eth.contract(
                address=to_checksum_address(address), abi=contract.web3_abi
            )
            known = self._contracts[key] = (contract, bound)
        return known[1]


class NodeClients:
    """Node clients by RPC URL, made on first use, sharing one keep-alive session
    (closed at shutdown)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, Web3NodeClient] = {}

    def get(self, url: str) -> Web3NodeClient:
        client = self._clients.get(url)
        if client is None:
            client = Web3NodeClient(url, self._shared_session())
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


def _at(block: int | None) -> BlockIdentifier:
    return "latest" if block is None else BlockNumber(block)


def to_json(value: Any) -> Any:
    """web3's AttributeDicts and HexBytes as plain JSON values."""
    return json.loads(Web3.to_json(value))


def refused_transaction(message: str) -> TaskError:
    """Why the node will not take a signed transaction, from its refusal."""
    if "insufficient funds" in message:
        return InsufficientFundsError(f"the signer cannot pay for gas and value: {message}")
    if _is_execution_failure(message):
        # The EVM could not run the caller's code or call: the request's fault, like a
        # revert, not the platform's.
        return RevertedError(f"the transaction cannot execute: {message}")
    return NodeRefusedError(f"the node refused: {message}")


def translate_revert(exc: Exception, abi: Sequence[dict[str, Any]] | None = None) -> TaskError:
    """web3's revert or refusal as a task error with a readable reason."""
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
    if isinstance(exc, Web3RPCError):
        return refused_transaction(message)
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
