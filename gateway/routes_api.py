"""The platform's REST API: every operation's route validated here, then proxied.

Validation runs before the proxy (FastAPI checks the operation's schema), so invalid
input is answered 422 by the gateway and never reaches a service or Kafka. What is
forwarded is the client's own query string or body, unchanged: the service validates it
again with the same schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from ethgw_wire.http_api import (
    ACCEPTED_STATUS,
    API_PREFIX,
    ENDPOINTS,
    HTTP_ERROR_CODES,
    Answer,
    Endpoint,
    Envelope,
    build_router,
    error_answers_doc,
    headers_doc,
)
from ethgw_wire.operations import Params
from gateway.errors import (
    INTERNAL,
    INVALID_INPUT,
    ForbiddenError,
    InvalidApiKeyError,
    MissingApiKeyError,
    NoInstanceError,
    RateLimitedError,
    UpstreamFailedError,
    UpstreamTimeoutError,
)
from gateway.state import forward_headers, get_caller, get_state
from gateway.upstream import GatewayBusyError, UpstreamAnswer

TASK_ID_PATTERN = r"^[0-9a-f]{32}$"  # new_task_id(): uuid4 hex, as the services check


async def _proxy(endpoint: Endpoint, params: Params, request: Request) -> Response:
    del params  # validated by the route; the original bytes are what is forwarded
    state = get_state(request)
    body = await request.body() if endpoint.method == "POST" else None
    answer = await state.upstreams.call(
        endpoint.service,
        endpoint.method,
        request.url.path,
        idempotent=endpoint.method == "GET",
        query=request.url.query,
        content=body,
        headers=forward_headers(request),
    )
    if endpoint.method == "POST" and answer.status == 200:
        _note_sent(request, answer)
    return answer.to_response()


def _note_sent(request: Request, answer: UpstreamAnswer) -> None:
    """A write answered with its transaction: the key's newPendingTransactions
    subscriptions hear of it (a write answered 202 is not followed up)."""
    caller = get_caller(request)
    try:
        envelope = answer.json()
    except ValueError:
        return
    data = envelope.get("data") if isinstance(envelope, dict) else None
    tx_hash = data.get("tx_hash") if isinstance(data, dict) else None
    if caller is not None and isinstance(tx_hash, str):
        get_state(request).subscriptions.deliver_pending(caller.key_id, tx_hash)


# What the gateway answers itself in front of any proxied route: the key's refusals, the
# rate limit, and the services out of reach.
_GATEWAY_ANSWERS = tuple(
    error.answer()
    for error in (
        MissingApiKeyError,
        InvalidApiKeyError,
        RateLimitedError,
        NoInstanceError,
        GatewayBusyError,
        UpstreamFailedError,
        UpstreamTimeoutError,
    )
)
_BODY_TOO_LARGE = Answer(413, "body_too_large")


def gateway_answers(endpoint: Endpoint) -> Sequence[Answer]:
    """The gateway's own answers on an operation's route, for its OpenAPI entry."""
    answers = list(_GATEWAY_ANSWERS)
    if endpoint.admin_only:
        answers.append(ForbiddenError.answer())
    if endpoint.method == "POST":
        answers.append(_BODY_TOO_LARGE)
    return answers


def api_router() -> APIRouter:
    """Every operation's REST route, proxied (reads to read, writes to write)."""
    return build_router(ENDPOINTS, _proxy, gateway_answers)


tasks_router = APIRouter(prefix=API_PREFIX, tags=["tasks"])


# A task's status: still running, unknown, or the gateway's own answers (no task is
# posted, so no 413).
_TASK_ANSWERS: dict[int | str, dict[str, object]] = {
    ACCEPTED_STATUS: {
        "model": Envelope,
        "description": "Still running",
        "headers": headers_doc(("Location", "Retry-After")),
    },
    **error_answers_doc(
        [*_GATEWAY_ANSWERS, INTERNAL, INVALID_INPUT, Answer(404, HTTP_ERROR_CODES[404])]
    ),
}


@tasks_router.get(
    "/tasks/{task_id}",
    response_model=Envelope,
    name="tasks.status",
    operation_id="task_status",
    responses=_TASK_ANSWERS,
)
async def task_status(
    task_id: Annotated[str, Path(pattern=TASK_ID_PATTERN, description="as a 202 answered it")],
    request: Request,
) -> Response:
    """A task's status and result: 200 done, 202 still running, 404 unknown.

    Any instance of either kind answers it (results are shared), so it goes to a read
    instance, or to a write instance when no read instance is healthy.
    """
    state = get_state(request)
    answer = await state.upstreams.call(
        "read",
        "GET",
        f"{API_PREFIX}/tasks/{task_id}",
        idempotent=True,
        headers=forward_headers(request),
        fallback_kind="write",
    )
    return answer.to_response()
