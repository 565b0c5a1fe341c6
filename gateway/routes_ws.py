"""`/rpc` over WebSocket: JSON-RPC with eth_subscribe and eth_unsubscribe.

The API key comes in the `X-API-Key` header of the upgrade request, or as `?key=` for
clients that cannot set headers (browsers). A refused key closes the handshake (HTTP 403).
eth_subscribe ["newHeads"], ["logs", {address, topics}] and ["newPendingTransactions"] are
answered here (gateway/subscriptions.py); every other call goes the way POST /rpc sends it
(`answer_rpc`), a few at once per socket. Every message costs one token of the key's rate
limit; each outgoing message waits in the socket's bounded outbox, and a client that lets
it fill is closed with code 1008, as is the socket of a key revoked while it is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from ethgw_wire.http_api import API_KEY_HEADER
from gateway.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    SUBSCRIBE,
    SUBSCRIPTION_METHODS,
    Allowlist,
    RpcCall,
    RpcFailure,
    check_call,
    loads,
    rpc_error,
)
from gateway.keys import ApiKey
from gateway.log_filter import FilterError, parse_log_filter
from gateway.metrics import NOTIFICATIONS_SENT, RATE_LIMITED
from gateway.routes_rpc import answer_rpc
from gateway.state import GatewayState, get_caller
from gateway.subscriptions import (
    SLOW_CLOSE_CODE,
    Session,
    SubscriptionKind,
    SubscriptionLimitError,
)

log = logging.getLogger("ethgw.gateway")

router = APIRouter()

KEY_QUERY_PARAMETER = "key"
REFUSED_CLOSE_CODE = 1008  # before the handshake is accepted: the client sees HTTP 403
CLOSE_TIMEOUT_S = 2.0
_KINDS = ", ".join(kind.value for kind in SubscriptionKind)
_NEEDS_BLOCKS = frozenset({SubscriptionKind.NEW_HEADS, SubscriptionKind.LOGS})


@router.websocket("/rpc")
async def rpc_socket(websocket: WebSocket) -> None:
    state: GatewayState = websocket.app.state.gateway
    request_id = uuid.uuid4().hex
    websocket.state.request_id = request_id
    key, refusal = _authenticate(state, websocket)
    if key is None:
        log.info("websocket refused reason=%s request_id=%s", refusal, request_id)
        await websocket.close(REFUSED_CLOSE_CODE, refusal)
        return
    websocket.state.api_key = key
    await websocket.accept()
    session = state.subscriptions.open(key.key_id)
    log.info("websocket opened key_id=%s request_id=%s", key.key_id, request_id)
    try:
        ended = await _serve(state, websocket, session)
    finally:
        state.subscriptions.close(session)
    log.info("websocket closed key_id=%s request_id=%s end=%s", key.key_id, request_id, ended)


def _authenticate(state: GatewayState, websocket: WebSocket) -> tuple[ApiKey | None, str]:
    plaintext = websocket.headers.get(API_KEY_HEADER) or websocket.query_params.get(
        KEY_QUERY_PARAMETER
    )
    if not plaintext:
        return None, f"missing API key: send it in the {API_KEY_HEADER} header or as ?key="
    key = state.keyring.verify(plaintext)
    if key is None:
        return None, "the API key is not valid"
    return key, ""


async def _serve(state: GatewayState, websocket: WebSocket, session: Session) -> str:
    """Run the socket until the client leaves or is dropped; returns how it ended."""
    calls: set[asyncio.Task[None]] = set()
    sender = asyncio.create_task(_send_loop(websocket, session))
    receiver = asyncio.create_task(_receive_loop(state, websocket, session, calls))
    overflow = asyncio.create_task(session.overflowed.wait())
    revoked = asyncio.create_task(session.revoked.wait())
    watched = {sender, receiver, overflow, revoked}
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    for task in (*watched, *calls):
        task.cancel()
    await asyncio.gather(*watched, *calls, return_exceptions=True)
    if revoked in done:
        log.info("websocket of a revoked key closed key_id=%s", session.key_id)
        await _close(websocket, REFUSED_CLOSE_CODE, "the API key was revoked")
        return "revoked"
    if overflow in done:
        log.warning(
            "websocket slow client dropped key_id=%s outbox=%d",
            session.key_id,
            session.outbox.maxsize,
        )
        await _close(websocket, SLOW_CLOSE_CODE, "slow client: too many unread messages")
        return "slow_client"
    for task in done:
        error = task.exception()
        if error is not None and not isinstance(error, WebSocketDisconnect):
            log.error("websocket failed key_id=%s error=%r", session.key_id, error)
            await _close(websocket, 1011, "internal error of the gateway")
            return "error"
    return "client"


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A client that reads nothing may not take the close frame either: bounded.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)


async def _send_loop(websocket: WebSocket, session: Session) -> None:
    while True:
        message = await session.outbox.get()
        await websocket.send_text(message.text)
        if message.kind is not None:
            NOTIFICATIONS_SENT.labels(message.kind.value).inc()


async def _receive_loop(
    state: GatewayState, websocket: WebSocket, session: Session, calls: set[asyncio.Task[None]]
) -> None:
    allowlist = Allowlist([*state.allowlist.read_methods, *SUBSCRIPTION_METHODS])
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            raw: bytes = message.get("bytes") or b""
            text = raw.decode("utf-8", errors="replace")
        refusal = _refusal(state, get_caller(websocket), text, len(calls))
        if refusal is not None:
            session.offer(refusal)
            continue
        try:
            document = loads(text)
        except (ValueError, RecursionError):
            session.offer(rpc_error(None, PARSE_ERROR, "parse error: not JSON"))
            continue
        if isinstance(document, dict) and document.get("method") in SUBSCRIPTION_METHODS:
            _subscription_call(state, session, check_call(document, allowlist))
            continue
        task = asyncio.create_task(_forwarded_call(state, websocket, session, text))
        calls.add(task)
        task.add_done_callback(calls.discard)


def _refusal(
    state: GatewayState, key: ApiKey | None, text: str, running: int
) -> dict[str, Any] | None:
    """The error a message earns before it is read: too large, over the key's rate, or
    too many calls of this socket still running."""
    limit = state.settings.body_limit_bytes
    if len(text) > limit:
        return rpc_error(
            None, INVALID_REQUEST, f"message of {len(text)} bytes exceeds the limit of {limit}"
        )
    now = time.monotonic()
    if key is not None:
        wait = state.limiter.take(key.key_id, key.role, now)
        if wait > 0:
            RATE_LIMITED.labels(key.role).inc()
            data = {"status": 429, "code": "rate_limited", "retry_after_s": round(wait, 2)}
            message = f"rate limit of this API key exceeded; retry in {wait:.2f} s"
            return rpc_error(None, LIMIT_EXCEEDED, message, data)
    if running >= state.settings.ws_calls_in_flight:
        return rpc_error(
            None,
            LIMIT_EXCEEDED,
            f"this socket already runs {running} calls, the limit; wait for their answers",
        )
    return None


async def _forwarded_call(
    state: GatewayState, websocket: WebSocket, session: Session, text: str
) -> None:
    outcome = await answer_rpc(state, websocket, text.encode())
    if outcome.content is not None:
        session.offer(outcome.content)


def _subscription_call(state: GatewayState, session: Session, item: RpcCall | RpcFailure) -> None:
    """Answer eth_subscribe or eth_unsubscribe at once, so the answer is queued before any
    notification of the new subscription."""
    if isinstance(item, RpcFailure):
        if not item.notification:
            session.offer(item.response)
        return
    try:
        result = (
            _subscribe(state, session, item.params)
            if item.method == SUBSCRIBE
            else _unsubscribe(state, session, item.params)
        )
    except _CallError as error:
        if not item.notification:
            session.offer(rpc_error(item.id, error.code, error.message))
        return
    if not item.notification:
        session.offer({"jsonrpc": "2.0", "id": item.id, "result": result})


class _CallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _subscribe(state: GatewayState, session: Session, params: list[Any]) -> str:
    if not params or not isinstance(params[0], str):
        raise _CallError(
            INVALID_PARAMS, f"invalid params: params[0] must be the subscription kind ({_KINDS})"
        )
    try:
        kind = SubscriptionKind(params[0])
    except ValueError:
        raise _CallError(
            INVALID_PARAMS,
            f"invalid params: params[0]: unknown subscription kind {params[0][:64]!r}"
            f" (allowed: {_KINDS})",
        ) from None
    options = list(params[1:])
    while options and options[-1] is None:
        options.pop()  # an absent option, however the client spells it
    log_filter = None
    if kind is SubscriptionKind.LOGS:
        if len(options) > 1:
            raise _CallError(INVALID_PARAMS, "invalid params: logs takes one filter, params[1]")
        try:
            log_filter = parse_log_filter(options[0] if options else None)
        except FilterError as error:
            raise _CallError(
                INVALID_PARAMS, f"invalid params: params[1].{error.field}: {error.reason}"
            ) from None
    elif kind is SubscriptionKind.PENDING:
        if len(options) > 1 or (options and options[0] not in (False, None)):
            raise _CallError(
                INVALID_PARAMS,
                "invalid params: params[1]: newPendingTransactions sends transaction hashes"
                " only (full transactions: false or absent)",
            )
    elif options:
        raise _CallError(INVALID_PARAMS, "invalid params: params[1]: newHeads takes no options")
    try:
        subscription = state.subscriptions.subscribe(session, kind, log_filter)
    except SubscriptionLimitError as error:
        raise _CallError(LIMIT_EXCEEDED, str(error)) from None
    if kind in _NEEDS_BLOCKS:
        state.chain_stream.ensure_started()
    log.info(
        "subscription opened key_id=%s kind=%s subscription=%s",
        session.key_id,
        kind.value,
        subscription.id,
    )
    return subscription.id


def _unsubscribe(state: GatewayState, session: Session, params: list[Any]) -> bool:
    if len(params) != 1 or not isinstance(params[0], str):
        raise _CallError(
            INVALID_PARAMS, "invalid params: params[0] must be the subscription id, alone"
        )
    return state.subscriptions.unsubscribe(session, params[0])
