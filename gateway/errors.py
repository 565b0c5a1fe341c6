"""Failures the gateway itself answers, each with its HTTP status and stable code, and
the envelope responses for them and for FastAPI's own errors (422, 404, 405)."""

from __future__ import annotations

import json
import math
from typing import ClassVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ethgw_wire.errors import InvalidParamsError
from ethgw_wire.http_api import (
    API_KEY_HEADER,
    HTTP_ERROR_CODES,
    Answer,
    Envelope,
    envelope_content,
    error_envelope,
    http_error_envelope,
    validation_envelope,
)


class GatewayError(Exception):
    """Base of the gateway's own failures: `status`, `code` and `retriable` say how the
    client sees it, the message says why."""

    status = 500
    code = "internal"
    retriable = False
    # The headers headers() gives, by name (ethgw_wire.http_api.HEADERS), for OpenAPI.
    header_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def headers(self) -> dict[str, str]:
        return {}

    @classmethod
    def answer(cls) -> Answer:
        """How OpenAPI documents it."""
        return Answer(cls.status, cls.code, cls.header_names)


# RFC 9110 section 11.6.1: a 401 names the scheme the client should use.
WWW_AUTHENTICATE = f'ApiKey realm="ethgw", header="{API_KEY_HEADER}"'


class UnauthenticatedError(GatewayError):
    """Base of the 401s of a missing or unknown API key: they say how to authenticate."""

    status = 401
    header_names = ("WWW-Authenticate",)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": WWW_AUTHENTICATE}


class MissingApiKeyError(UnauthenticatedError):
    """The request carries no API key."""

    code = "missing_api_key"


class InvalidApiKeyError(UnauthenticatedError):
    """The API key is not one the gateway knows."""

    code = "invalid_api_key"


class ForbiddenError(GatewayError):
    """The key's role may not call this endpoint (a user key on an admin endpoint)."""

    status = 403
    code = "forbidden"


class InvalidRegistryTokenError(GatewayError):
    """A registry call without the right registry token."""

    status = 401
    code = "invalid_registry_token"


class UnknownInstanceError(GatewayError):
    """A heartbeat or deregistration of an instance the registry does not hold."""

    status = 404
    code = "unknown_instance"


class RateLimitedError(GatewayError):
    """The key has used up its rate limit for now; `quota` are the RateLimit headers."""

    status = 429
    code = "rate_limited"
    retriable = True
    header_names = ("Retry-After", "RateLimit-Policy", "RateLimit")

    def __init__(self, reason: str, retry_after_s: float, quota: dict[str, str]) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.quota = quota

    def headers(self) -> dict[str, str]:
        return {"Retry-After": retry_after(self.retry_after_s), **self.quota}


class HeavyCallsLimitedError(GatewayError):
    """The key already runs as many heavy JSON-RPC calls (eth_call, eth_getLogs, ...) as a
    key may at once."""

    status = 429
    code = "heavy_calls_limited"
    retriable = True
    header_names = ("Retry-After",)
    HEADERS: ClassVar[dict[str, str]] = {
        "Retry-After": "1"
    }  # a heavy call takes well under a second on a sane node

    def headers(self) -> dict[str, str]:
        return dict(self.HEADERS)


class EventStreamsLimitedError(GatewayError):
    """The key already holds as many event streams open as a key may."""

    status = 429
    code = "event_streams_limited"
    retriable = True
    header_names = ("Retry-After",)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class EventsUnavailableError(GatewayError):
    """The platform events could not be read through the read pipeline in time."""

    status = 503
    code = "events_unavailable"
    retriable = True
    header_names = ("Retry-After",)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class BodyTooLargeError(StarletteHTTPException):
    """The request body exceeds the gateway's limit.

    An HTTPException so that FastAPI passes it on unchanged when it is raised while a
    route reads the body (FastAPI turns other exceptions there into a 400).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")
        self.limit = limit


class NoInstanceError(GatewayError):
    """No healthy instance of the needed service: none registered, or every breaker open."""

    status = 503
    code = "service_unavailable"
    retriable = True
    header_names = ("Retry-After",)

    def __init__(self, reason: str, retry_after_s: float | None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": retry_after(self.retry_after_s or 1.0)}


class UpstreamFailedError(GatewayError):
    """The service instance did not answer properly (connection lost, server crash)."""

    status = 502
    code = "upstream_failed"
    retriable = True


class UpstreamTimeoutError(GatewayError):
    """The service instance did not answer in time."""

    status = 504
    code = "upstream_timeout"
    retriable = True


class ManagerUnavailableError(GatewayError):
    """The cluster manager's API cannot be reached."""

    status = 503
    code = "manager_unavailable"
    retriable = True


class ManagerTimeoutError(GatewayError):
    """The cluster manager did not answer in time (the action may still complete)."""

    status = 504
    code = "manager_timeout"
    retriable = True


class ManagerFailedError(GatewayError):
    """The cluster manager answered with an error of its own."""

    status = 502
    code = "manager_error"


class NotOfferedError(GatewayError):
    """The cluster manager does not offer this operation (yet)."""

    status = 501
    code = "not_implemented"


class UnknownNodeError(GatewayError):
    """The cluster manager knows no node by this id."""

    status = 404
    code = "not_found"


# -- what the gateway's own routes answer besides success, for OpenAPI -------------------

INVALID_INPUT = Answer(InvalidParamsError.http_status, InvalidParamsError.code)
BODY_TOO_LARGE = Answer(413, HTTP_ERROR_CODES[413])
INTERNAL = GatewayError.answer()
# A route behind an API key: no key, an unknown one, its rate limit; a crash.
KEYED_ANSWERS = (
    MissingApiKeyError.answer(),
    InvalidApiKeyError.answer(),
    RateLimitedError.answer(),
    INTERNAL,
)
# An admin route: a user key is refused too.
ADMIN_ANSWERS = (*KEYED_ANSWERS, ForbiddenError.answer())
# An admin route that asks the cluster manager: it may be out of reach, slow or failing.
MANAGER_ANSWERS = (
    *ADMIN_ANSWERS,
    ManagerUnavailableError.answer(),
    ManagerTimeoutError.answer(),
    ManagerFailedError.answer(),
)
# A mining action: its action checked, or not offered by the manager.
MINING_ANSWERS = (*MANAGER_ANSWERS, INVALID_INPUT, BODY_TOO_LARGE, NotOfferedError.answer())
# A node action: its node id checked, the node unknown, or the action not offered.
NODE_ACTION_ANSWERS = (*MINING_ANSWERS, UnknownNodeError.answer())


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1 (the header has no fractions)."""
    return str(max(1, math.ceil(seconds)))


# -- rendering -----------------------------------------------------------------------------


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def envelope_response(envelope: Envelope, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(envelope_content(envelope), status_code=envelope.status, headers=headers)


def gateway_error_envelope(error: GatewayError, request_id: str | None) -> Envelope:
    return error_envelope(
        error.status,
        error.code,
        error.reason,
        field=error.field,
        request_id=request_id,
        retriable=error.retriable,
    )


def envelope_bytes(envelope: Envelope) -> bytes:
    return json.dumps(envelope_content(envelope)).encode()


async def validation_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return envelope_response(validation_envelope(error.errors(), request_id_of(request)))


async def http_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    envelope = http_error_envelope(
        error.status_code,
        str(error.detail),
        request.method,
        request.url.path,
        request_id_of(request),
    )
    headers = dict(error.headers or {})
    methods_at = getattr(request.app.state, "methods_at", None)
    if error.status_code == 405 and methods_at is not None:
        headers["Allow"] = ", ".join(methods_at(request.url.path))
    return envelope_response(envelope, headers)


async def gateway_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, GatewayError)
    return envelope_response(gateway_error_envelope(error, request_id_of(request)), error.headers())
