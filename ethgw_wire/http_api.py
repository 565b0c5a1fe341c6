"""The REST API of the private-equity app (thesis tables 4.1 and 4.2), defined once.

The read and write services build their routes from ENDPOINTS (a route = a task),
and so does the gateway (a route = a proxy), so the gateway's OpenAPI document
describes exactly what the services serve, and both validate the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from ethgw_wire.operations import Operation, Params, get_operation

API_PREFIX = "/api/v1"
REQUEST_ID_HEADER = "X-Request-ID"
API_KEY_HEADER = "X-API-Key"

Service = Literal["read", "write"]


@dataclass(frozen=True)
class Endpoint:
    """One route: its method and path (under API_PREFIX) and the operation behind it."""

    method: Literal["GET", "POST"]
    path: str
    operation_name: str
    summary: str
    path_param: str | None = None  # a parameter carried in the path, e.g. projectId

    @property
    def operation(self) -> Operation:
        return get_operation(self.operation_name)

    @property
    def service(self) -> Service:
        return "write" if self.method == "POST" else "read"

    @property
    def admin_only(self) -> bool:
        return self.operation.admin_only

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path


ENDPOINTS: tuple[Endpoint, ...] = (
    # read service (table 4.2, plus the table 5.1 mix)
    Endpoint("GET", "/conn/connect", "conn.connect", "Connectivity of a node"),
    Endpoint("GET", "/conn/blockNum", "chain.block_number", "Chain height"),
    Endpoint("GET", "/conn/gasPrice", "chain.gas_price", "Current gas price (wei)"),
    Endpoint("GET", "/conn/coinbase", "chain.coinbase", "The main (coinbase) account"),
    Endpoint("GET", "/conn/accounts", "node.accounts", "The node's own accounts"),
    Endpoint("GET", "/admin/list", "accounts.list", "Every platform account"),
    Endpoint("GET", "/eth/balance", "eth.balance", "An account's ether balance (wei)"),
    Endpoint("GET", "/token/balance", "token.balance", "An account's platform tokens"),
    Endpoint("GET", "/token/total", "token.total", "Total token supply"),
    Endpoint("GET", "/tx/blockhash", "block.by_hash", "A block by its hash"),
    Endpoint("GET", "/tx/blocknumber", "block.by_number", "A block by its number"),
    Endpoint("GET", "/tx/txhash", "tx.by_hash", "A transaction by its hash"),
    Endpoint("GET", "/tx/txNum", "block.tx_count", "Number of transactions in a block"),
    Endpoint("GET", "/tx/receipt", "tx.receipt", "A transaction's receipt"),
    Endpoint("GET", "/projects", "projects.list", "Published projects, paged"),
    Endpoint(
        "GET",
        "/projects/{projectId}/purchases",
        "projects.purchases",
        "The purchases of a project",
        path_param="projectId",
    ),
    # write service (table 4.1)
    Endpoint("POST", "/contract/deploy", "contract.deploy", "Deploy a contract (admin)"),
    Endpoint("POST", "/admin/new", "account.create", "Create an account"),
    Endpoint("POST", "/admin/unlock", "account.unlock", "Unlock an account for a while"),
    Endpoint("POST", "/token/add", "token.add", "Mint tokens to an account (admin)"),
    Endpoint("POST", "/token/delete", "token.delete", "Burn tokens of an account (admin)"),
    Endpoint("POST", "/token/set", "token.set", "Set an account's token balance (admin)"),
    Endpoint("POST", "/token/transfer", "token.transfer", "Move tokens between accounts"),
    Endpoint("POST", "/token/publish", "token.publish", "Publish a project (rewarded)"),
    Endpoint("POST", "/token", "token.buy", "Buy a project with tokens"),
    Endpoint("POST", "/tx/send", "eth.send", "Send ether"),
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


# How a failed task's error code shows over HTTP.
ERROR_STATUS: dict[str, int] = {
    "invalid_params": 422,
    "unknown_operation": 404,
    "not_found": 404,
    "unknown_account": 404,
    "wrong_password": 403,
    "account_locked": 409,
    "reverted": 409,
    "insufficient_funds": 409,
    "method_not_allowed": 403,
    "node_unavailable": 503,
    "platform_not_ready": 503,
    "receipt_timeout": 504,
}


def http_status_of(code: str) -> int:
    return ERROR_STATUS.get(code, 500)


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
            response_model=Envelope,
            tags=["admin" if endpoint.admin_only else endpoint.service],
        )
    return router


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
