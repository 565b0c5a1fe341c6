"""Refusals before any task exists (a bad parameter, an unknown path), as envelopes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumer_service.answers import envelope_response, request_id_of
from ethgw_wire.http_api import error_envelope

# FastAPI's error locations start with where the value came from; a client knows it.
_LOCATION_PARTS = ("body", "query", "path", "params")


def add_error_handlers(app: FastAPI) -> None:
    """Answer a validation error with 422 invalid_params naming the field, and any other
    HTTP error (404 on an unknown path, 405) with the envelope of its status."""
    app.exception_handler(RequestValidationError)(_invalid_params)
    app.exception_handler(StarletteHTTPException)(_http_error)


async def _invalid_params(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in _LOCATION_PARTS]
    field = ".".join(location) or None
    reason = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    request_id = request_id_of(request)
    return envelope_response(
        error_envelope(422, "invalid_params", reason, field=field, request_id=request_id),
        request_id,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    request_id = request_id_of(request)
    code = "not_found" if exc.status_code == 404 else "http_error"
    return envelope_response(
        error_envelope(exc.status_code, code, str(exc.detail), request_id=request_id),
        request_id,
    )
