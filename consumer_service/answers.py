"""How a consumer service answers: the thesis's envelope, with the request id echoed."""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ethgw_wire.callers import CALLER_HEADER, Caller
from ethgw_wire.http_api import (
    MIN_BLOCK_HEADER,
    REQUEST_ID_HEADER,
    Envelope,
    accepted_headers,
    envelope_content,
    error_envelope,
    http_status_of,
    task_path,
)
from ethgw_wire.messages import ResultMessage, TaskStatus


def request_id_of(request: Request) -> str:
    """The caller's request id (cut to 64 characters), or a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given[:64] if given else uuid.uuid4().hex


class InvalidCallerError(ValueError):
    """The caller header is there but names no API key (it did not come from the gateway)."""


def caller_of(request: Request) -> Caller | None:
    """The API key the gateway stamped on the request; None when no gateway forwarded it
    (a tool or test calling the service itself). Raises InvalidCallerError when malformed:
    such a request must not run as the platform."""
    value = request.headers.get(CALLER_HEADER)
    if value is None:
        return None
    try:
        return Caller.from_header(value)
    except ValidationError:
        raise InvalidCallerError(
            f"{CALLER_HEADER} must be user:<key id> or admin:<key id>"
        ) from None


class InvalidMinBlockError(ValueError):
    """The client's lowest block is not a block number."""


_MAX_BLOCK = 2**63 - 1


def min_block_of(request: Request, head: int | None, max_ahead: int) -> int | None:
    """The lowest block the client asks its read's node to have (decimal or 0x hex), None
    when it asks none. Raises InvalidMinBlockError naming the header when it is no number, or
    is more than `max_ahead` blocks past the chain's `head` (as the node reports give it)."""
    value = request.headers.get(MIN_BLOCK_HEADER)
    if value is None:
        return None
    text = value.strip()
    try:
        number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        number = -1
    if not 0 <= number <= _MAX_BLOCK or len(text) > 20:
        raise InvalidMinBlockError(
            f"{MIN_BLOCK_HEADER} must be a block number (decimal or 0x hex), not {value[:40]!r}"
        )
    if head is not None and number > head + max_ahead:
        raise InvalidMinBlockError(
            f"{MIN_BLOCK_HEADER} {number} is past the chain's head ({head}) by more than"
            f" {max_ahead} blocks: no node has it; pass the blockNumber a write answered"
        )
    return number


def invalid_caller_response(error: InvalidCallerError, request_id: str) -> JSONResponse:
    refusal = error_envelope(
        422, "invalid_params", str(error), field=CALLER_HEADER, request_id=request_id
    )
    return envelope_response(refusal, request_id)


def invalid_min_block_response(error: InvalidMinBlockError, request_id: str) -> JSONResponse:
    refusal = error_envelope(
        422, "invalid_params", str(error), field=MIN_BLOCK_HEADER, request_id=request_id
    )
    return envelope_response(refusal, request_id)


def envelope_response(envelope: Envelope, request_id: str | None) -> JSONResponse:
    """The envelope as the HTTP answer: its status and the headers it implies (the
    request id; Location and Retry-After on a 202; Link to a next page)."""
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    if envelope.status == 202 and envelope.task_id is not None:
        headers.update(accepted_headers(envelope.task_id))
    next_page = envelope.data.get("next") if isinstance(envelope.data, dict) else None
    if isinstance(next_page, str):
        headers["Link"] = f'<{next_page}>; rel="next"'
    return JSONResponse(envelope_content(envelope), status_code=envelope.status, headers=headers)


def result_envelope(result: ResultMessage | None, task_id: str, request_id: str) -> Envelope:
    """A task's result as an envelope: 200 with its data, the error's status, or 202
    with the task id while it has no final result (the wait ran out, or it still runs)."""
    if result is None or not result.done:
        return Envelope(
            status=202,
            message=f"accepted: the result will be at {task_path(task_id)}",
            task_id=task_id,
            request_id=request_id,
        )
    if result.status is TaskStatus.SUCCEEDED:
        return Envelope(
            status=200, message="ok", data=result.data, task_id=task_id, request_id=request_id
        )
    error = result.error
    code = error.code if error else "internal"
    return error_envelope(
        http_status_of(code),
        code,
        error.message if error else "the task failed",
        field=error.field if error else None,
        request_id=request_id,
        task_id=task_id,
        retriable=error.retriable if error else False,
    )


def result_response(result: ResultMessage | None, task_id: str, request_id: str) -> JSONResponse:
    """A task's result (or its absence after the wait) as an envelope response."""
    return envelope_response(result_envelope(result, task_id, request_id), request_id)
