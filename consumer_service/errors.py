"""Refusals before any task exists (a bad parameter, an unknown path), as envelopes, and
the catch-all that answers any other error as JSON too."""

from __future__ import annotations

import json
import time
import uuid

import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumer_service.answers import envelope_response, request_id_of
from consumer_service.jsonrpc import INTERNAL_ERROR, RPC_PATH, SERVER_ERROR, rpc_error
from ethgw_wire.http_api import (
    REQUEST_ID_HEADER,
    envelope_content,
    error_envelope,
    http_error_envelope,
    validation_envelope,
)
from ethgw_wire.registration import INSTANCE_FAULT_HEADER
from service_kit.logs import get_logger

log = get_logger("ethgw.service")


def add_error_handlers(app: FastAPI) -> None:
    """Answer a validation error with 422 invalid_params naming the field, any other
    HTTP error (404 on an unknown path, 405) with the envelope of its status, and any
    error no handler takes with a JSON 500 (CatchAll)."""
    app.exception_handler(RequestValidationError)(_invalid_params)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.add_middleware(CatchAll)


async def _invalid_params(request: Request, exc: RequestValidationError) -> JSONResponse:
    request_id = request_id_of(request)
    return envelope_response(validation_envelope(exc.errors(), request_id), request_id)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    request_id = request_id_of(request)
    envelope = http_error_envelope(
        exc.status_code, str(exc.detail), request.method, request.url.path, request_id
    )
    return envelope_response(envelope, request_id)


class CatchAll:
    """Any error no handler took: its traceback logged once, with the request id, and
    the answer still JSON (the envelope, or a JSON-RPC error object on /rpc).

    An unreachable Kafka is the instance's own failure: 503 kafka_unavailable, marked
    with INSTANCE_FAULT_HEADER so the gateway's breaker counts it. Any other error is
    500 internal, unmarked: it may be one request's content, which must not take an
    instance out of every client's service. A pure ASGI middleware, not an Exception
    handler: Starlette re-raises after such a handler, and uvicorn logs it a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500
        began = time.perf_counter()
        request_id = _request_id(scope)
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)

        async def watched_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            if started:
                raise  # too late for an answer; the server logs it and cuts the connection
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            await _answer_error(error, scope["path"], request_id, send)
        finally:
            seconds = round(time.perf_counter() - began, 4)
            log.debug(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                seconds=seconds,
            )
            structlog.contextvars.reset_contextvars(**bound)


def _request_id(scope: Scope) -> str:
    """The request id the gateway forwarded (cut to 64 characters); without one, a new id,
    put in the headers so the routes and the task carry the id the log lines carry."""
    given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")[:64]
    if given:
        return given
    made = uuid.uuid4().hex
    scope["headers"] = [*scope["headers"], (REQUEST_ID_HEADER.lower().encode(), made.encode())]
    return made


async def _answer_error(error: Exception, path: str, request_id: str, send: Send) -> None:
    headers = {REQUEST_ID_HEADER: request_id, "content-type": "application/json"}
    if isinstance(error, KafkaError):
        status, code, reason = 503, "kafka_unavailable", "the service cannot reach Kafka; retry"
        headers[INSTANCE_FAULT_HEADER] = "kafka"
        headers["retry-after"] = "1"
    else:
        status, code, reason = 500, "internal", "internal error of the service"
    if path == RPC_PATH:
        rpc_code = SERVER_ERROR if status == 503 else INTERNAL_ERROR
        data = {"status": status, "code": code, "request_id": request_id}
        document: object = rpc_error(None, rpc_code, reason, data)
    else:
        envelope = error_envelope(
            status, code, reason, request_id=request_id, retriable=status == 503
        )
        document = envelope_content(envelope)
    body = json.dumps(document).encode()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
