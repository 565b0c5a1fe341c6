"""JSON-RPC 2.0 at /rpc: parsing, validation and the method allowlist (pure functions).

A request becomes a list of items, each either a call to forward (RpcCall) or the error
response it already earned (RpcFailure); the route forwards the calls and answers in
the request's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ethgw_wire.operations import RPC_SEND_RAW, Service, get_operation

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # an implementation-defined server error (upstream unavailable, ...)
LIMIT_EXCEEDED = -32005  # EIP-1474: request exceeds a defined limit (rate, batch size)

SEND_RAW_TRANSACTION = RPC_SEND_RAW
# Answered by the gateway itself, on a WebSocket only (gateway/routes_ws.py).
SUBSCRIBE = "eth_subscribe"
UNSUBSCRIBE = "eth_unsubscribe"
SUBSCRIPTION_METHODS = frozenset({SUBSCRIBE, UNSUBSCRIBE})
# The operations a JSON-RPC call becomes: their services are where the calls go.
_READ_CALL = get_operation("rpc.call")
_RAW_SEND = get_operation("rpc.send_raw")
MAX_METHOD_LENGTH = 64
MAX_PARAMS = 16  # as the services' RpcCallParams allow

# Namespaces that manage a node or its keys: never reachable from outside, whatever the
# node would accept. Named in the error so a client knows it is a policy, not a typo.
DENIED_NAMESPACES = ("personal", "admin", "miner", "debug", "txpool", "clique", "engine")

JsonId = str | int | float | None


def rpc_error(request_id: JsonId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


@dataclass(frozen=True)
class RpcCall:
    """A valid, allowed call: what to forward and where."""

    id: JsonId
    method: str
    params: list[Any]
    kind: Service
    notification: bool  # no "id": executed, but no response is returned

    def payload(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "method": self.method, "params": self.params}


@dataclass(frozen=True)
class RpcFailure:
    """A call refused before forwarding, with its error response."""

    response: dict[str, Any]
    notification: bool = False


@dataclass(frozen=True)
class RpcAnswer:
    """A call the gateway answered itself (a batch's eth_blockNumber once its head is pinned)."""

    response: dict[str, Any]
    notification: bool = False


RpcItem = RpcCall | RpcFailure
# An item once a batch's head is pinned: some calls are then answered by the gateway itself.
PinnedItem = RpcCall | RpcFailure | RpcAnswer


class Allowlist:
    """Read methods go where rpc.call runs (read instances); eth_sendRawTransaction
    where rpc.send_raw runs (write instances)."""

    def __init__(self, read_methods: Iterable[str]) -> None:
        self.read_methods = frozenset(read_methods)

    def kind_of(self, method: str) -> Service | None:
        if method == SEND_RAW_TRANSACTION:
            return _RAW_SEND.service
        if method in self.read_methods:
            return _READ_CALL.service
        return None

    @staticmethod
    def denial(method: str) -> str:
        if method in SUBSCRIPTION_METHODS:
            return (
                f"method {method} needs a WebSocket: open ws://<gateway>/rpc with the API key"
                " and send it alone, not in a batch"
            )
        namespace = method.split("_", 1)[0]
        if namespace in DENIED_NAMESPACES:
            return (
                f"method {method} is not available: the {namespace}_ namespace "
                "is not reachable through the gateway"
            )
        return (
            f"method {method} does not exist or is not allowed through the gateway "
            "(allowed: chain reads and eth_sendRawTransaction)"
        )


@dataclass(frozen=True)
class ParsedRequest:
    items: list[RpcItem]
    batch: bool


class RpcRequestError(Exception):
    """The whole request is refused with one error response (parse error, empty or
    oversized batch)."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(response["error"]["message"])
        self.response = response


def parse_request(body: bytes, allowlist: Allowlist, batch_limit: int) -> ParsedRequest:
    """Parse a request body; raises RpcRequestError when no call can be answered."""
    try:
        document = loads(body)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested arrays are valid JSON that CPython cannot parse.
        raise RpcRequestError(rpc_error(None, PARSE_ERROR, "parse error: not JSON")) from None
    if isinstance(document, list):
        if not document:
            raise RpcRequestError(rpc_error(None, INVALID_REQUEST, "empty batch"))
        if len(document) > batch_limit:
            raise RpcRequestError(
                rpc_error(
                    None,
                    INVALID_REQUEST,
                    f"batch of {len(document)} calls exceeds the limit of {batch_limit}",
                )
            )
        return ParsedRequest([check_call(item, allowlist) for item in document], batch=True)
    return ParsedRequest([check_call(document, allowlist)], batch=False)


def loads(text: bytes | str) -> Any:
    """json.loads without NaN and Infinity (not JSON; they could not be written back)."""
    return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python accepts them); an id of NaN could not even
    be written back in the response."""
    raise ValueError(f"{name} is not JSON")


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def check_call(obj: Any, allowlist: Allowlist) -> RpcItem:
    """One call object: an RpcCall to forward, or the RpcFailure it earned."""
    if not isinstance(obj, dict):
        return RpcFailure(rpc_error(None, INVALID_REQUEST, "invalid request: not an object"))
    notification = "id" not in obj
    call_id = obj.get("id")
    if not _valid_id(call_id):
        return RpcFailure(
            rpc_error(None, INVALID_REQUEST, "invalid request: id must be a string or number")
        )

    def failure(code: int, message: str) -> RpcFailure:
        return RpcFailure(rpc_error(call_id, code, message), notification)

    def invalid(message: str) -> RpcFailure:
        # Not a Request object, so no notification either: JSON-RPC 2.0 answers it (id
        # null when it has none), as its spec's example of an invalid Request shows.
        return RpcFailure(rpc_error(call_id, INVALID_REQUEST, message), notification=False)

    if obj.get("jsonrpc") != "2.0":
        return invalid('invalid request: "jsonrpc" must be "2.0"')
    method = obj.get("method")
    if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD_LENGTH:
        return invalid(
            f'invalid request: "method" must be a string of 1-{MAX_METHOD_LENGTH} characters'
        )
    params = obj.get("params", [])
    if isinstance(params, dict):
        return failure(INVALID_PARAMS, "invalid params: only positional (array) params")
    if not isinstance(params, list):
        return invalid('invalid request: "params" must be an array')
    if len(params) > MAX_PARAMS:
        return failure(INVALID_PARAMS, f"invalid params: at most {MAX_PARAMS} params")
    kind = allowlist.kind_of(method)
    if kind is None:
        return failure(METHOD_NOT_FOUND, allowlist.denial(method))
    return RpcCall(call_id, method, params, kind, notification)


def upstream_response(call: RpcCall, status: int, body: Any) -> dict[str, Any]:
    """The response to a call from what the service answered: its JSON-RPC response with
    the caller's id, or an error object made from its envelope."""
    if isinstance(body, dict) and ("result" in body or "error" in body) and "status" not in body:
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": call.id}
        if "error" in body and isinstance(body["error"], dict):
            response["error"] = body["error"]
        else:
            response["result"] = body.get("result")
        return response
    if isinstance(body, dict) and isinstance(body.get("status"), int):
        # An envelope: the service refused or could not finish the call.
        error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        reason = str(error.get("reason") or body.get("message") or "upstream error")
        code = {
            422: INVALID_PARAMS,
            403: METHOD_NOT_FOUND,
        }.get(status, SERVER_ERROR)
        data: dict[str, Any] = {"status": status}
        if body.get("task_id"):
            data["task_id"] = body["task_id"]
        if error.get("retriable") or status in (202, 503):
            data["retriable"] = True
        if status == 202:
            reason = (
                "the call is still running: "
                f"GET /api/v1/tasks/{body.get('task_id')} answers it later"
            )
        return rpc_error(call.id, code, reason, data)
    return rpc_error(call.id, INTERNAL_ERROR, "internal error: the service gave no JSON-RPC answer")
