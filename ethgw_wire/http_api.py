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
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError, create_model
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import compile_path

# Re-exported: the services map a failed task's code to its status through this module.
from ethgw_wire.errors import http_status_of as http_status_of
from ethgw_wire.operations import OPERATIONS, Operation, Params, path_param_of
from ethgw_wire.operations import Service as Service

API_PREFIX = "/api/v1"
REQUEST_ID_HEADER = "X-Request-ID"
API_KEY_HEADER = "X-API-Key"
# A read's lowest block (decimal or 0x hex): it runs on a node that has the block, or waits
# for one (ETHGW_READS_MIN_BLOCK_WAIT_S). A client passes the blockNumber its write was mined
# in; the gateway passes the head it pinned a JSON-RPC batch's "latest" to.
MIN_BLOCK_HEADER = "X-Ethgw-Min-Block"

# What any route may answer besides its data and its operation's errors.
ACCEPTED_STATUS = 202  # the wait ran out: the task goes on, its result comes later
# How long a client told 202 waits before asking for the task (Retry-After).
ACCEPTED_RETRY_AFTER_S = 1

# What each header an answer may carry means, for OpenAPI (who sends it says when).
HEADERS: dict[str, str] = {
    "Location": "The task's URL: GET it for the status and the result",
    "Retry-After": "Seconds to wait before trying again (or asking for the task)",
    "WWW-Authenticate": f'How to authenticate: ApiKey realm="ethgw", header="{API_KEY_HEADER}"',
    "RateLimit-Policy": "The key's quota policy: q requests per window of w seconds "
    "(draft-ietf-httpapi-ratelimit-headers)",
    "RateLimit": "What is left of the quota: r requests, t seconds until the next one",
    "Link": 'The next page: <path>; rel="next"',
}


class DigitsConvertor(Convertor[str]):
    """A path segment of decimal digits, kept as text: the operation's schema validates it
    (so /blocks/{blockNumber:uint} and /blocks/{blockHash:hash32} are told apart)."""

    regex = "[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


class Hash32Convertor(DigitsConvertor):
    """A path segment that is a 0x-prefixed 32-byte hex hash."""

    regex = "0x[0-9a-fA-F]{64}"


register_url_convertor("uint", DigitsConvertor())
register_url_convertor("hash32", Hash32Convertor())


@dataclass(frozen=True)
class Endpoint:
    """An operation at one REST route (its thesis path, or a resource-style alias): what
    the routers and the gateway read."""

    operation: Operation
    path: str  # under API_PREFIX, with any convertor, e.g. /blocks/{blockNumber:uint}
    deprecated: bool = False  # a thesis path whose operation has a resource-style alias

    @property
    def operation_name(self) -> str:
        return self.operation.name

    @property
    def method(self) -> Literal["GET", "POST"]:
        return self.operation.method

    @property
    def full_path(self) -> str:
        """The path as OpenAPI and clients show it (convertors dropped)."""
        return API_PREFIX + compile_path(self.path)[1]

    @property
    def summary(self) -> str:
        return self.operation.summary

    @property
    def operation_id(self) -> str:
        """Its OpenAPI operationId, the name a generated client gives its function: the
        operation's (block_by_number), with _thesis on a deprecated thesis path."""
        name = self.operation.handler_name
        return f"{name}_thesis" if self.deprecated else name

    @property
    def path_param(self) -> str | None:
        return path_param_of(self.path)

    @property
    def service(self) -> Service:
        return self.operation.service

    @property
    def admin_only(self) -> bool:
        return self.operation.admin_only


def endpoints_of_operation(operation: Operation) -> list[Endpoint]:
    """An operation's routes: its thesis path (deprecated when it has aliases), then its
    aliases."""
    if operation.path is None:
        return []
    thesis = Endpoint(operation, operation.path, deprecated=bool(operation.aliases))
    return [thesis, *(Endpoint(operation, alias) for alias in operation.aliases)]


# Every REST route of every operation, in declaration order (reads, then writes).
ENDPOINTS: tuple[Endpoint, ...] = tuple(
    endpoint for operation in OPERATIONS.values() for endpoint in endpoints_of_operation(operation)
)


def endpoints_of(service: Service) -> list[Endpoint]:
    return [e for e in ENDPOINTS if e.service == service]


# -- the envelope -------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    reason: str
    field: str | None = None
    retriable: bool = False


class FieldProblem(BaseModel):
    """One bad field of a request refused as invalid_params."""

    field: str | None = None  # left out of the answer when None, so it is optional
    reason: str


class Envelope(BaseModel):
    """The thesis's BaseResult {status, message} plus data, ids and error details;
    `status` repeats the HTTP status code. Members that are empty are left out of the
    answer (envelope_content), so every answer, from any part, has one shape."""

    status: int
    message: str
    data: Any = None
    task_id: str | None = None
    request_id: str | None = None
    error: ErrorDetail | None = None
    # invalid_params only: every failing field, where `error` names the first.
    errors: list[FieldProblem] | None = None


class ErrorEnvelope(Envelope):
    """An envelope answering a failure: `error` says which and why."""

    error: ErrorDetail


def envelope_content(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the JSON of an answer: empty members left out."""
    return envelope.model_dump(mode="json", exclude_none=True)


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


def field_of(location: Sequence[Any]) -> str | None:
    """The field a validation error names: its location without the part of the request
    it came in (body, query, path), dotted when nested, e.g. "address" or "abi.0"."""
    parts = [str(p) for p in location]
    if parts == ["body"]:
        return "body"  # the body as a whole: missing, or not an object
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


def validation_envelope(errors: Sequence[Any], request_id: str | None) -> Envelope:
    """422 invalid_params naming the first bad field and why; `errors` lists every one."""
    problems: list[FieldProblem] = []
    for error in errors:
        field = "body" if error.get("type") == "json_invalid" else field_of(error.get("loc", ()))
        problems.append(FieldProblem(field=field, reason=str(error.get("msg") or "invalid")))
    first = problems[0] if problems else FieldProblem(field=None, reason="invalid input")
    envelope = error_envelope(
        422, "invalid_params", first.reason, field=first.field, request_id=request_id
    )
    envelope.message = f"{first.field}: {first.reason}" if first.field else first.reason
    envelope.errors = problems
    return envelope


# The codes of the HTTP errors a router answers itself (an unknown path, a wrong method).
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "http_method_not_allowed",
    413: "body_too_large",
}


def http_error_envelope(
    status: int, detail: str, method: str, path: str, request_id: str | None
) -> Envelope:
    """An HTTP error the router raised (no route, wrong method) as an envelope."""
    reason = detail
    if status == 404 and detail == "Not Found":
        reason = f"no route {method} {path} (see /docs)"
    elif status == 405:
        reason = f"method {method} is not allowed on {path}"
    code = HTTP_ERROR_CODES.get(status, f"http_{status}")
    # A router's only 400: a body it cannot read as JSON at all (not UTF-8, for one).
    field = "body" if status == UNREADABLE_BODY.status else None
    return error_envelope(status, code, reason, field=field, request_id=request_id)


def accepted_headers(task_id: str) -> dict[str, str]:
    """What a 202 carries: where the task's result will be, and when to ask."""
    return {"Location": task_path(task_id), "Retry-After": str(ACCEPTED_RETRY_AFTER_S)}


def task_path(task_id: str) -> str:
    return f"{API_PREFIX}/tasks/{task_id}"


# -- routes from the table --------------------------------------------------------

# Called with the endpoint, the validated parameters and the request.
RouteHandler = Callable[[Endpoint, Params, Request], Awaitable[Response]]


@dataclass(frozen=True)
class Answer:
    """An answer other than success that a route documents: its status, its code and the
    headers it carries (named in HEADERS)."""

    status: int
    code: str
    headers: tuple[str, ...] = ()


# What a service instance answers for a fault of its own, whatever the operation
# (consumer_service/errors.py): its Kafka out of reach, an error no handler took.
SERVICE_FAULTS = (Answer(503, "kafka_unavailable", ("Retry-After",)), Answer(500, "internal"))
# What a router answers for a body it cannot read as JSON at all (http_error_envelope).
UNREADABLE_BODY = Answer(400, HTTP_ERROR_CODES[400])

# What the part in front of a router answers too (the gateway: keys, rate limits).
ExtraAnswers = Callable[[Endpoint], Sequence[Answer]]


def _no_extra_answers(endpoint: Endpoint) -> Sequence[Answer]:
    return ()


def build_router(
    endpoints: Sequence[Endpoint],
    handler: RouteHandler,
    extra_answers: ExtraAnswers = _no_extra_answers,
) -> APIRouter:
    """One FastAPI route per endpoint; parameters are validated by the operation's
    schema (path value, query for GET, JSON body for POST), so OpenAPI shows them."""
    router = APIRouter(prefix=API_PREFIX)
    for endpoint in endpoints:
        router.add_api_route(
            endpoint.path,
            _route(endpoint, handler),
            methods=[endpoint.method],
            summary=endpoint.summary,
            name=endpoint.operation_name,
            operation_id=endpoint.operation_id,
            response_model=envelope_of(endpoint.operation),
            responses=documented_answers(endpoint, extra_answers(endpoint)),
            tags=["admin" if endpoint.admin_only else endpoint.service],
            deprecated=endpoint.deprecated or None,
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


def documented_answers(
    endpoint: Endpoint, extra: Sequence[Answer] = ()
) -> dict[int | str, dict[str, Any]]:
    """The answers other than success that OpenAPI lists for a route: the deferred 202
    (with Location and Retry-After), and each status its operation's errors and `extra`
    answer, with their codes and headers."""
    answers = [Answer(e.http_status, e.code) for e in endpoint.operation.answerable_errors]
    if endpoint.method == "POST":
        answers.append(UNREADABLE_BODY)
    answers += [*SERVICE_FAULTS, *extra]
    documented: dict[int | str, dict[str, Any]] = {
        ACCEPTED_STATUS: {
            "model": Envelope,
            "description": "Still running: the task id, and the task's URL in Location",
            "headers": headers_doc(("Location", "Retry-After")),
        }
    }
    documented.update(error_answers_doc(answers))
    return documented


def error_answers_doc(answers: Sequence[Answer]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` for its error answers: one ErrorEnvelope per status, with
    its codes and headers."""
    by_status: dict[int, list[Answer]] = {}
    for answer in answers:
        by_status.setdefault(answer.status, []).append(answer)
    documented: dict[int | str, dict[str, Any]] = {}
    for status, listed in sorted(by_status.items()):
        codes = list(dict.fromkeys(a.code for a in listed))
        headers = list(dict.fromkeys(h for a in listed for h in a.headers))
        documented[status] = {
            "model": ErrorEnvelope,
            "description": "Error codes: " + ", ".join(codes),
            **({"headers": headers_doc(headers)} if headers else {}),
        }
    return documented


def headers_doc(names: Sequence[str]) -> dict[str, Any]:
    return {name: {"description": HEADERS[name], "schema": {"type": "string"}} for name in names}


def _route(endpoint: Endpoint, handler: RouteHandler) -> Callable[..., Awaitable[Response]]:
    """A route function whose signature FastAPI reads: the request, plus the parameters
    as a path value and the rest as a query model (GET) or a JSON body (POST)."""
    model = endpoint.operation.params
    path_param = endpoint.path_param
    rest = model if path_param is None else _without(model, path_param)
    request_param = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
    )
    extra: list[inspect.Parameter] = []
    if path_param is not None:
        schema = model.model_json_schema(by_alias=True)["properties"][path_param]
        extra.append(_keyword(path_param, Annotated[str, Path(json_schema_extra=schema)]))
    if endpoint.method == "POST" and (path_param is None or rest.model_fields):
        extra.append(_keyword("params", Annotated[rest, Body()]))
    elif endpoint.method == "GET" and rest.model_fields:
        extra.append(_keyword("params", Annotated[rest, Query()]))

    async def route(request: Request, **values: Any) -> Response:
        given: Params | None = values.get("params")
        if path_param is None:
            return await handler(endpoint, given or model(), request)
        fields = {} if given is None else given.model_dump(by_alias=True, exclude_unset=True)
        try:
            params = model.model_validate({**fields, path_param: values[path_param]})
        except ValidationError as error:
            raise RequestValidationError(
                error.errors(include_url=False, include_context=False)
            ) from None
        return await handler(endpoint, params, request)

    route.__signature__ = inspect.Signature([request_param, *extra])  # type: ignore[attr-defined]
    return route


@functools.cache
def _without(model: type[Params], path_param: str) -> type[Params]:
    """The operation's parameters without the one its path carries (by alias): what the
    query or the body holds."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in model.model_fields.items()
        if (info.alias or name) != path_param
    }
    if len(fields) == len(model.model_fields):
        raise ValueError(f"{model.__name__} has no field {path_param}")
    return create_model(f"{model.__name__}Rest", __base__=Params, **fields)


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
