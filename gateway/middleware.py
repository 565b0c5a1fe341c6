"""The one ASGI middleware in front of every route: request id, access (API key, role,
registry token), rate limit, body size limit, metrics, and a last-resort 500.

Pure ASGI rather than BaseHTTPMiddleware: it adds no task or body copy per request, and
it can refuse a request before anything reads its body.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ethgw_wire.http_api import API_KEY_HEADER, ENDPOINTS, REQUEST_ID_HEADER, error_envelope
from ethgw_wire.registration import REGISTRY_TOKEN_HEADER
from gateway.errors import (
    BodyTooLargeError,
    ForbiddenError,
    GatewayError,
    InvalidApiKeyError,
    InvalidRegistryTokenError,
    MissingApiKeyError,
    RateLimitedError,
    envelope_bytes,
    gateway_error_envelope,
)
from gateway.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, LIMIT_EXCEEDED, SERVER_ERROR, rpc_error
from gateway.keys import Role
from gateway.metrics import LATENCY, RATE_LIMITED, REQUESTS
from gateway.routes_dashboard import ASSET_PATH, DASHBOARD_PATH
from gateway.routes_events import EVENTS_ROUTE
from gateway.state import GatewayState
from gateway.traffic import is_traffic
from service_kit.logs import get_logger

log = get_logger("ethgw.gateway")

RPC_PATH = "/rpc"
# A client's request id is kept when it is short and plain (it goes into logs and
# tasks); anything else is replaced by a fresh one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ADMIN_OPERATIONS = {e.operation_name for e in ENDPOINTS if e.admin_only}
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    # The dashboard's page and assets hold no data; its data is under /admin (admin key).
    | {DASHBOARD_PATH, ASSET_PATH}
)


class Access(StrEnum):
    PUBLIC = "public"
    REGISTRY = "registry"  # service instances, with the registry token
    USER = "user"
    ADMIN = "admin"


def access_of(path_template: str, route_name: str | None) -> Access:
    """Who may call a route. Anything not named public needs an API key (fail closed)."""
    if path_template in PUBLIC_PATHS:
        return Access.PUBLIC
    if path_template.startswith("/registry/"):
        return Access.REGISTRY
    if path_template.startswith("/admin/") or route_name in _ADMIN_OPERATIONS:
        return Access.ADMIN
    return Access.USER


class RouteTable:
    """The route template a request will reach and who may call it, matched with the
    routes' own templates (compiled as Starlette compiles them), so the access rule and
    the metrics label never drift from the routes."""

    UNMATCHED = "unmatched"
    _CACHE_SIZE = 4096

    def __init__(self, routers: Sequence[APIRouter]) -> None:
        self._entries: list[tuple[re.Pattern[str], frozenset[str], str, Access]] = []
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute):
                    regex, _, _ = compile_path(route.path)
                    access = access_of(route.path, route.name)
                    self._entries.append(
                        (regex, frozenset(route.methods or ()), route.path, access)
                    )
        self._cache: dict[tuple[str, str], tuple[str, Access]] = {}

    def match(self, method: str, path: str) -> tuple[str, Access]:
        cached = self._cache.get((method, path))
        if cached is not None:
            return cached
        found = self._match(method, path)
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()  # paths with ids are unbounded; the routes are few
        self._cache[(method, path)] = found
        return found

    def methods_at(self, path: str) -> list[str]:
        """Every method some route serves at this path, for a 405's Allow (Starlette's
        names only the first matching route's, so GET and POST on two routes of one
        path said `Allow: GET`)."""
        methods = {m for regex, ms, _, _ in self._entries if regex.match(path) for m in ms}
        return sorted(methods)

    def _match(self, method: str, path: str) -> tuple[str, Access]:
        partial: tuple[str, Access] | None = None
        for regex, methods, template, access in self._entries:
            if regex.match(path):
                if method in methods or (method == "HEAD" and "GET" in methods):
                    return template, access
                partial = partial or (template, access)  # the path exists: 405, same rule
        # No route (or FastAPI's docs): the router answers, and a 404 needs no key.
        return partial or (self.UNMATCHED, Access.PUBLIC)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, state: GatewayState, routes: RouteTable) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = headers.get(REQUEST_ID_HEADER, "")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        template, access = self.routes.match(scope["method"], path)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                response_headers[REQUEST_ID_HEADER] = request_id
                for name, value in scope["state"].get("quota", {}).items():
                    response_headers.setdefault(name, value)
            await send(message)

        try:
            refusal = self._admit(scope, headers, access, template)
            if refusal is not None:
                await self._refuse(refusal, template, request_id, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except ClientDisconnect:
            # The client went away while sending its body: nobody to answer.
            log.debug("client_disconnected", route=template)
        except BodyTooLargeError as error:
            # Raised while reading the body outside a route's error handling.
            if response_started:
                raise
            await self._refuse(error, template, request_id, send_with_id)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], route=template)
            if response_started:
                raise
            internal = GatewayError("internal error of the gateway")
            await self._refuse(internal, template, request_id, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            REQUESTS.labels(template, scope["method"], str(status)).inc()
            # An event stream lasts as long as its client listens: not a request's latency.
            if template != EVENTS_ROUTE:
                LATENCY.labels(template).observe(elapsed)
                if is_traffic(template):
                    self.state.traffic.observe(elapsed, status, time.time())
            # Failures are logged where their cause is known (upstream, breaker, manager),
            # bounded per cause; one line per request would flood the log in an outage.
            log.debug(
                "request",
                method=scope["method"],
                route=template,
                status=status,
                seconds=round(elapsed, 4),
            )
            structlog.contextvars.reset_contextvars(**bound)

    def _admit(
        self, scope: Scope, headers: Headers, access: Access, template: str
    ) -> GatewayError | BodyTooLargeError | None:
        """The reason to refuse the request before it reaches a route, or None."""
        if access is Access.PUBLIC:
            return None
        if access is Access.REGISTRY:
            offered = headers.get(REGISTRY_TOKEN_HEADER, "")
            token = self.state.registry_token
            if not token or not hmac.compare_digest(offered.encode(), token.encode()):
                log.info("registry_call_refused", route=template, reason="bad_token")
                return InvalidRegistryTokenError("missing or wrong registry token")
            return self._check_length(headers)
        plaintext = headers.get(API_KEY_HEADER)
        if not plaintext:
            return MissingApiKeyError(
                f"this endpoint needs an API key in the {API_KEY_HEADER} header"
            )
        key = self.state.keyring.verify(plaintext)
        if key is None:
            # The key itself is never logged, not even in part.
            log.info("request_refused", route=template, reason="unknown_key")
            return InvalidApiKeyError("the API key is not valid")
        scope["state"]["api_key"] = key
        if access is Access.ADMIN and key.role is not Role.ADMIN:
            log.info("request_refused", route=template, reason="forbidden", key_id=key.key_id)
            return ForbiddenError("this endpoint needs an admin API key")
        now = time.monotonic()
        wait = self.state.limiter.take(key.key_id, key.role, now)
        # Every keyed answer says what is left of the key's quota; a 429 too.
        quota = scope["state"]["quota"] = self.state.limiter.headers(key.key_id, key.role, now)
        if wait > 0:
            RATE_LIMITED.labels(key.role).inc()
            return RateLimitedError(
                f"rate limit of this API key exceeded; retry in {wait:.2f} s", wait, quota
            )
        return self._check_length(headers)

    def _check_length(self, headers: Headers) -> BodyTooLargeError | None:
        limit = self.state.settings.body_limit_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return BodyTooLargeError(limit)
        return None

    def _limited(self, receive: Receive) -> Receive:
        """The body as it streams in, refused once it passes the limit (a client can
        send no Content-Length, or a false one)."""
        limit = self.state.settings.body_limit_bytes
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        return receive_limited

    async def _refuse(
        self,
        error: GatewayError | BodyTooLargeError,
        template: str,
        request_id: str,
        send: Send,
    ) -> None:
        if isinstance(error, BodyTooLargeError):
            envelope = error_envelope(
                413, "body_too_large", str(error.detail), request_id=request_id
            )
            extra: dict[str, str] = {}
        else:
            envelope = gateway_error_envelope(error, request_id)
            extra = error.headers()
        status = envelope.status
        if template == RPC_PATH:
            # A JSON-RPC client reads error objects, not envelopes.
            rpc_code = {413: INVALID_REQUEST, 429: LIMIT_EXCEEDED, 500: INTERNAL_ERROR}.get(
                status, SERVER_ERROR
            )
            code = envelope.error.code if envelope.error else "error"
            data: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}
            body = json.dumps(rpc_error(None, rpc_code, envelope.message, data)).encode()
        else:
            body = envelope_bytes(envelope)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
