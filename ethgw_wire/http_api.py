"""The REST API of the private-equity app (thesis tables 4.1 and 4.2), derived from
the operations' declarations (ethgw_wire.operations).

The read and write services build their routes from ENDPOINTS (a route = a task),
and so does the gateway (a route = a proxy), so the gateway's OpenAPI document
describes exactly what the services serve, and both validate the same way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, create_model

# Re-exported: the services map a failed task's code to its status through this module.
from ethgw_wire.errors import http_status_of as http_status_of
from ethgw_wire.operations import OPERATIONS, Operation, Params
from ethgw_wire.operations import Service as Service

API_PREFIX = "/api/v1"
REQUEST_ID_HEADER = "X-Request-ID"
API_KEY_HEADER = "X-API-Key"

# What any route may answer besides its data and its operation's errors.
ACCEPTED_STATUS = 202  # the wait ran out: the task goes on, its result comes later


@dataclass(frozen=True)
class Endpoint:
    """An operation seen as a REST route: what the routers and the gateway read."""

    operation: Operation

    def __post_init__(self) -> None:
        if self.operation.path is None:
            raise ValueError(f"{self.operation.name} has no REST route")

    @property
    def operation_name(self) -> str:
        return self.operation.name

    @property
    def method(self) -> Literal["GET", "POST"]:
        return self.operation.method

    @property
    def path(self) -> str:
        """Under API_PREFIX."""
        assert self.operation.path is not None  # checked when the endpoint was made
        return self.operation.path

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path

    @property
    def summary(self) -> str:
        return self.operation.summary

    @property
    def path_param(self) -> str | None:
        return self.operation.path_param

    @property
    def service(self) -> Service:
        return self.operation.service

    @property
    def admin_only(self) -> bool:
        return self.operation.admin_only


# Every operation that has a REST route, in declaration order (reads, then writes).
ENDPOINTS: tuple[Endpoint, ...] = tuple(
    Endpoint(operation) for operation in OPERATIONS.values() if operation.path is not None
)


def endpoints_of(service: Service) -> list[Endpoint]:
    return [e for e in ENDPOINTS if e.service == service]


# -- the envelope -------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    reason: str
    field: str | None = None
    retriable: bool = False


class Envelope(BaseModel):
    """The thesis's BaseResult {status, message} plus data, ids and error details;
    `status` repeats the HTTP status code."""

    model_config = ConfigDict(extra="allow")

    status: int
    message: str
    data: Any = None
    task_id: str | None = None
    request_id: str | None = None
    error: ErrorDetail | None = None


def error_envelope(
    status: int,
    code: str,
    reason: str,
    field: str | None = None,
    request_id: str | None = None,
    task_id: str | None = None,
    retriable: bool = False,
) -> Envelope:
    return Envelope(
        status=status,
        message=reason,
        task_id=task_id,
        request_id=request_id,
        error=ErrorDetail(code=code, reason=reason, field=field, retriable=retriable),
    )


# -- routes from the table --------------------------------------------------------

# Called with the endpoint, the validated parameters and the request.
RouteHandler = Callable[[Endpoint, Params, Request], Awaitable[Response]]


def build_router(endpoints: Sequence[Endpoint], handler: RouteHandler) -> APIRouter:
    """One FastAPI route per endpoint; parameters are validated by the operation's
    schema (query for GET, JSON body for POST), so OpenAPI shows them."""
    router = APIRouter(prefix=API_PREFIX)
    for endpoint in endpoints:
        router.add_api_route(
            endpoint.path,
            _route(endpoint, handler),
            methods=[endpoint.method],
            summary=endpoint.summary,
            name=endpoint.operation_name,
            response_model=envelope_of(endpoint.operation),
            responses=_documented_answers(endpoint.operation),
            tags=["admin" if endpoint.admin_only else endpoint.service],
        )
    return router


@functools.cache
def envelope_of(operation: Operation) -> type[Envelope]:
    """The envelope of an operation's success, its data typed by the operation's result
    model (OpenAPI documents it; the answer itself is passed through unchanged)."""
    model_name = "".join(part.title() for part in operation.handler_name.split("_"))
    return create_model(
        f"{model_name}Envelope",
        __base__=Envelope,
        __doc__=f"The answer of {operation.name}: {operation.summary}.",
        data=(operation.result | None, None),
    )


def _documented_answers(operation: Operation) -> dict[int | str, dict[str, Any]]:
    """The answers other than success that OpenAPI lists for a route: each status
    its operation's errors answer, with their codes, and the deferred 202."""
    codes_by_status: dict[int, list[str]] = {}
    for error in operation.answerable_errors:
        codes_by_status.setdefault(error.http_status, []).append(error.code)
    answers: dict[int | str, dict[str, Any]] = {
        ACCEPTED_STATUS: {"model": Envelope, "description": "Still running: the task id"}
    }
    for status, codes in sorted(codes_by_status.items()):
        answers[status] = {"model": Envelope, "description": "Error codes: " + ", ".join(codes)}
    return answers


def _route(endpoint: Endpoint, handler: RouteHandler) -> Callable[..., Awaitable[Response]]:
    """A route function whose signature FastAPI reads: the request, plus the
    parameters as a path value, a query model or a JSON body."""
    model = endpoint.operation.params
    request_param = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
    )
    extra: list[inspect.Parameter] = []
    if endpoint.path_param is not None:
        extra.append(_keyword(endpoint.path_param, Annotated[int, Path(ge=0, le=2**63 - 1)]))
    elif endpoint.method == "POST":
        extra.append(_keyword("params", Annotated[model, Body()]))
    elif model.model_fields:
        extra.append(_keyword("params", Annotated[model, Query()]))

    async def route(request: Request, **values: Any) -> Response:
        if endpoint.path_param is not None:
            params = model.model_validate(values)
        else:
            params = values.get("params") or model()
        return await handler(endpoint, params, request)

    route.__signature__ = inspect.Signature([request_param, *extra])  # type: ignore[attr-defined]
    return route


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
