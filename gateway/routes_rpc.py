"""`POST /rpc`: standard Ethereum JSON-RPC 2.0 for any web3 client, single or batch.

Each allowed call goes to a service as one call object (`POST /api/v1/rpc`): reads to a
read instance (retried once elsewhere), eth_sendRawTransaction to a write instance, so
both run through the task pipeline and the scheduler like any REST request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from ethgw_wire.http_api import API_PREFIX, MIN_BLOCK_HEADER
from ethgw_wire.operations import RPC_HEAVY_METHODS
from gateway.batch_head import pin_head
from gateway.errors import (
    KEYED_ANSWERS,
    BodyTooLargeError,
    GatewayError,
    HeavyCallsLimitedError,
)
from gateway.jsonrpc import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    SEND_RAW_TRANSACTION,
    SERVER_ERROR,
    PinnedItem,
    RpcAnswer,
    RpcCall,
    RpcFailure,
    RpcItem,
    RpcRequestError,
    parse_request,
    rpc_error,
    upstream_response,
)
from gateway.keys import ApiKey
from gateway.metrics import HEAVY_REFUSED
from gateway.state import GatewayState, forward_headers, get_caller, get_state

log = logging.getLogger("ethgw.gateway")
HEAVY_METHODS = frozenset(RPC_HEAVY_METHODS)

router = APIRouter(tags=["json-rpc"])

_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jsonrpc", "method"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        "method": {"type": "string", "example": "eth_blockNumber"},
        "params": {"type": "array", "items": {}},
    },
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_CALL_SCHEMA, {"type": "array", "items": _CALL_SCHEMA}],
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "A JSON-RPC response object, or an array of them for a batch",
            "content": {"application/json": {"schema": {}}},
        },
        "204": {"description": "Only notifications (calls without id): nothing to answer"},
        "413": {
            "description": "The body exceeds the gateway's limit, a JSON-RPC error -32600",
            "content": {"application/json": {"schema": {}}},
        },
        "429": {
            "description": "One call refused: its key already runs its limit of heavy calls"
            " (eth_call, eth_getLogs, ...), a JSON-RPC error -32005; or the key's rate limit,"
            " a JSON-RPC error whose error.data.code is rate_limited",
            "content": {"application/json": {"schema": {}}},
        },
    },
}
# What the gateway answers in front of /rpc (no key, an unknown one, a crash), which it
# renders as JSON-RPC errors there too, the envelope's code in error.data.code.
for _status in sorted({a.status for a in KEYED_ANSWERS}):
    _codes = ", ".join(a.code for a in KEYED_ANSWERS if a.status == _status)
    _OPENAPI["responses"].setdefault(
        str(_status),
        {
            "description": f"A JSON-RPC error, error.data.code: {_codes}",
            "content": {"application/json": {"schema": {}}},
        },
    )


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status, headers=headers)


@router.post(
    "/rpc",
    name="rpc",
    summary="Ethereum JSON-RPC 2.0 (single or batch; reads and eth_sendRawTransaction)",
    openapi_extra=_OPENAPI,
    response_class=JSONResponse,
)
async def rpc(request: Request) -> Response:
    state = get_state(request)
    try:
        body = await request.body()
    except BodyTooLargeError as error:
        return _json(rpc_error(None, INVALID_REQUEST, str(error.detail)), 413)
    outcome = await answer_rpc(state, request, body)
    if outcome.content is None:
        return Response(status_code=204)  # only notifications: JSON-RPC returns nothing
    return _json(outcome.content, outcome.status, outcome.headers)


@dataclass(frozen=True)
class RpcOutcome:
    """What a JSON-RPC request body is answered: `content` None when it held only
    notifications; `status` and `headers` for HTTP."""

    content: Any
    status: int = 200
    headers: dict[str, str] | None = None


async def answer_rpc(state: GatewayState, conn: HTTPConnection, body: bytes) -> RpcOutcome:
    """Answer a JSON-RPC body (one call or a batch) as /rpc does, over HTTP or a WebSocket:
    each allowed call forwarded to a service, the rest answered with their errors."""
    try:
        parsed = parse_request(body, state.allowlist, state.settings.rpc_batch_limit)
    except RpcRequestError as error:
        return RpcOutcome(error.response)
    _charge_batch(state, conn, len(parsed.items))
    admission = _admit_heavy(state, get_caller(conn), parsed.items)
    try:
        items, head = await pin_head(admission.items, lambda: _ask_head(state, conn))
        pinned = {} if head is None else {MIN_BLOCK_HEADER: str(head)}
        responses = await asyncio.gather(*(_answer(state, conn, item, pinned) for item in items))
    finally:
        admission.release(state)
    pairs = zip(items, responses, strict=True)
    answered = [response for item, response in pairs if not item.notification]
    if not answered:
        return RpcOutcome(None)
    if not parsed.batch and admission.refused:
        # One call, refused: the HTTP status says so too (a batch mixes answers: 200).
        return RpcOutcome(
            answered[0], HeavyCallsLimitedError.status, HeavyCallsLimitedError.HEADERS
        )
    return RpcOutcome(answered if parsed.batch else answered[0])


@dataclass
class _Admission:
    """A request's items once its heavy calls took their key's slots (or were refused)."""

    items: list[RpcItem]
    key_id: str = ""
    taken: int = 0
    refused: int = 0

    def release(self, state: GatewayState) -> None:
        for _ in range(self.taken):
            state.heavy_calls.release(self.key_id)
        self.taken = 0


def _admit_heavy(state: GatewayState, caller: ApiKey | None, items: list[RpcItem]) -> _Admission:
    """Each heavy call takes one of its key's slots, in the request's order; a call that
    finds none left is answered with the refusal instead."""
    if caller is None:
        return _Admission(items)
    admission = _Admission([], caller.key_id)
    for item in items:
        if not isinstance(item, RpcCall) or item.method not in HEAVY_METHODS:
            admission.items.append(item)
        elif state.heavy_calls.take(caller.key_id):
            admission.taken += 1
            admission.items.append(item)
        else:
            admission.refused += 1
            admission.items.append(_heavy_refusal(state, caller, item))
    return admission


def _heavy_refusal(state: GatewayState, caller: ApiKey, call: RpcCall) -> RpcFailure:
    limit = state.heavy_calls.per_key
    error = HeavyCallsLimitedError(
        f"too many heavy calls at once: this API key already runs {limit}"
        f" ({', '.join(RPC_HEAVY_METHODS)}), the limit per key; retry once one has finished"
    )
    HEAVY_REFUSED.labels(call.method).inc()
    log.info("heavy call refused key_id=%s method=%s limit=%d", caller.key_id, call.method, limit)
    data = {"status": error.status, "code": error.code, "retriable": error.retriable}
    return RpcFailure(rpc_error(call.id, LIMIT_EXCEEDED, error.reason, data), call.notification)


def _charge_batch(state: GatewayState, conn: HTTPConnection, calls: int) -> None:
    """A batch costs one token per call; the middleware (or the socket) took the first."""
    caller = get_caller(conn)
    if caller is not None and calls > 1:
        state.limiter.charge(caller.key_id, caller.role, time.monotonic(), calls - 1)


async def _answer(
    state: GatewayState, conn: HTTPConnection, item: PinnedItem, pinned: dict[str, str]
) -> Any:
    if isinstance(item, RpcFailure | RpcAnswer):
        return item.response
    response = await _forward(state, conn, item, pinned if item.kind == "read" else {})
    _note_sent(state, conn, item, response)
    return response


def _note_sent(
    state: GatewayState, conn: HTTPConnection, call: RpcCall, response: dict[str, Any]
) -> None:
    """A transaction this key sent: its newPendingTransactions subscriptions hear of it."""
    caller = get_caller(conn)
    tx_hash = response.get("result")
    if call.method == SEND_RAW_TRANSACTION and caller is not None and isinstance(tx_hash, str):
        state.subscriptions.deliver_pending(caller.key_id, tx_hash)


async def _ask_head(state: GatewayState, conn: HTTPConnection) -> int | None:
    """The head a batch's "latest" calls are pinned to: one eth_blockNumber through a read
    instance; None when it fails (the calls then run unpinned)."""
    call = RpcCall(id=0, method="eth_blockNumber", params=[], kind="read", notification=False)
    result = (await _forward(state, conn, call)).get("result")
    if not isinstance(result, str):
        return None
    try:
        return int(result, 16)
    except ValueError:
        return None


async def _forward(
    state: GatewayState, conn: HTTPConnection, call: RpcCall, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    try:
        answer = await state.upstreams.call(
            call.kind,
            "POST",
            f"{API_PREFIX}/rpc",
            idempotent=call.kind == "read",
            content=json.dumps(call.payload()).encode(),
            headers={
                **forward_headers(conn),
                **(extra or {}),
                "content-type": "application/json",
            },
        )
    except GatewayError as error:
        data = {"status": error.status, "code": error.code, "retriable": error.retriable}
        code = LIMIT_EXCEEDED if error.status == 429 else SERVER_ERROR
        return rpc_error(call.id, code, error.reason, data)
    try:
        body = answer.json()
    except (ValueError, RecursionError):
        body = None
    return upstream_response(call, answer.status, body)
