"""The operations' declarations and what derives from them: routes, OpenAPI, the
provider's dispatch and the HTTP status of each error code."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

import ethgw_wire.operations as operations_module
from ethgw_wire.errors import COMMON_ERRORS, ERRORS, TaskError, http_status_of
from ethgw_wire.http_api import ENDPOINTS, Endpoint, build_router, endpoints_of
from ethgw_wire.operations import OPERATIONS, Params, WriteOptions
from ethgw_wire.results import TransactionResult
from provider.handlers import Handlers
from provider.transactions import receipt_summary


def _handlers() -> Handlers:
    # Building the table reads no collaborator, so none is needed.
    unused = cast(Any, None)
    return Handlers(unused, unused, unused, Path("platform.json"), 1.0, 1, ())


def _openapi() -> dict[str, Any]:
    async def unused(endpoint: Endpoint, params: Params, request: Request) -> Response:
        raise AssertionError("not called")

    app = FastAPI()
    app.include_router(build_router(ENDPOINTS, unused))
    return app.openapi()


def _schema_name(reference: dict[str, Any]) -> str:
    return str(reference["$ref"]).rsplit("/", 1)[-1]


def _all_subclasses(cls: type[TaskError]) -> list[type[TaskError]]:
    """The class and its subclasses, except this module's stand-ins."""
    subclasses = (s for sub in cls.__subclasses__() for s in _all_subclasses(sub))
    return [cls, *(s for s in subclasses if s.__module__ != __name__)]


# -- dispatch ---------------------------------------------------------------------------


def test_every_operation_has_a_handler() -> None:
    """The provider has a coroutine method named after each operation."""
    missing = [
        operation.name
        for operation in OPERATIONS.values()
        if not inspect.iscoroutinefunction(getattr(Handlers, operation.handler_name, None))
    ]
    assert missing == []


def test_every_handler_serves_an_operation() -> None:
    """No coroutine method of the provider's handlers is left without an operation."""
    handler_names = {op.handler_name for op in OPERATIONS.values()}
    public = {
        name
        for name, member in inspect.getmembers(Handlers, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public - handler_names == set()


def test_dispatch_table_is_derived_from_the_operations() -> None:
    """The provider's table holds exactly the declared operations, each to its handler."""
    table = _handlers().table
    assert set(table) == set(OPERATIONS)
    assert all(table[name].__name__ == op.handler_name for name, op in OPERATIONS.items())


# -- names --------------------------------------------------------------------------------


def test_burn_has_one_name() -> None:
    """/token/delete is token.burn, with BurnParams and the handler token_burn."""
    [burn] = [e.operation for e in ENDPOINTS if e.path == "/token/delete"]
    assert (burn.name, burn.params.__name__, burn.handler_name) == (
        "token.burn",
        "BurnParams",
        "token_burn",
    )


def test_every_params_model_is_used() -> None:
    """Each parameter model of the operations module belongs to some operation."""
    declared = {
        value
        for value in vars(operations_module).values()
        if inspect.isclass(value) and issubclass(value, Params)
    }
    bases = {Params, WriteOptions}
    used = {op.params for op in OPERATIONS.values()}
    assert {m.__name__ for m in declared - bases - used} == set()


# -- routes -------------------------------------------------------------------------------


def test_every_route_maps_to_one_operation() -> None:
    """No two operations share a method and path."""
    routes = Counter((e.method, e.full_path) for e in ENDPOINTS)
    assert [route for route, count in routes.items() if count > 1] == []


def test_only_json_rpc_operations_have_no_route() -> None:
    """Every operation but the JSON-RPC pass-through has a REST route."""
    unrouted = {op.name for op in OPERATIONS.values() if op.path is None}
    assert unrouted == {"rpc.call", "rpc.send_raw"}


def test_reads_and_writes_are_split_between_the_services() -> None:
    """The read service serves the GET routes and the write service the POST routes."""
    assert {e.method for e in endpoints_of("read")} == {"GET"}
    assert {e.method for e in endpoints_of("write")} == {"POST"}
    assert len(endpoints_of("read")) + len(endpoints_of("write")) == len(ENDPOINTS)


def test_path_parameter_comes_from_the_path() -> None:
    """An operation whose path has {projectId} carries that parameter in the path."""
    purchases = OPERATIONS["projects.purchases"]
    assert purchases.path_param == "projectId"
    assert OPERATIONS["projects.list"].path_param is None


def test_router_names_each_route_after_its_operation() -> None:
    """The built router has one route per endpoint, named after its operation."""
    paths = _openapi()["paths"]
    for endpoint in ENDPOINTS:
        documented = paths[endpoint.full_path][endpoint.method.lower()]
        assert documented["operationId"] in (
            endpoint.operation.handler_name,
            endpoint.operation.handler_name + "_thesis",
        )


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_shows_each_operations_data_model() -> None:
    """A route's 200 envelope types `data` with its operation's result model."""
    document = _openapi()
    schemas = document["components"]["schemas"]
    for endpoint in ENDPOINTS:
        result = endpoint.operation.result
        if not (inspect.isclass(result) and issubclass(result, BaseModel)):
            continue  # a node's own object (block, transaction, receipt)
        answer = document["paths"][endpoint.full_path][endpoint.method.lower()]["responses"]
        envelope = schemas[_schema_name(answer["200"]["content"]["application/json"]["schema"])]
        data = envelope["properties"]["data"]["anyOf"]
        data_refs = [_schema_name(s) for s in data if "$ref" in s]
        assert data_refs == [result.__name__], endpoint.operation.name


def test_openapi_lists_the_statuses_of_an_operations_errors() -> None:
    """A route documents the status of every error its operation declares."""
    document = _openapi()
    for endpoint in ENDPOINTS:
        answers = document["paths"][endpoint.full_path][endpoint.method.lower()]["responses"]
        expected = {str(e.http_status) for e in endpoint.operation.answerable_errors}
        assert expected <= set(answers), endpoint.operation.name


def test_openapi_documents_a_mint_refused_by_the_contract() -> None:
    """token.mint lists 409 with the code reverted."""
    answers = _openapi()["paths"]["/api/v1/token/add"]["post"]["responses"]
    assert "reverted" in answers["409"]["description"]


# -- errors -------------------------------------------------------------------------------


def test_every_error_class_declares_its_code() -> None:
    """Each TaskError class answers a declared code (a finer type, such as the provider's
    kinds of node refusal, shares the code of the class it refines)."""
    classes = _all_subclasses(TaskError)
    assert {c.__name__ for c in classes if ERRORS.get(c.code) not in c.__mro__} == set()


def test_every_error_code_has_an_error_status() -> None:
    """Every declared code answers a 4xx or 5xx status."""
    assert {code: s for code in ERRORS if not 400 <= (s := http_status_of(code)) < 600} == {}


def test_every_error_class_says_what_failed() -> None:
    """Each error class has a one-line docstring of its own."""
    assert [c.__name__ for c in ERRORS.values() if not (c.__doc__ or "").strip()] == []


def test_node_behind_is_unavailable_for_now() -> None:
    """node_behind, which is retriable, answers 503."""
    assert http_status_of("node_behind") == 503
    assert ERRORS["node_behind"].retriable


def test_an_unknown_code_is_a_server_error() -> None:
    """A code no class declares answers 500."""
    assert http_status_of("no_such_code") == 500


def test_a_reused_code_is_refused() -> None:
    """Declaring a second class with a taken code fails at once."""
    with pytest.raises(TypeError, match="not_found"):

        class DuplicateError(TaskError):
            """A stand-in that reuses not_found."""

            code = "not_found"


def test_common_errors_are_declared() -> None:
    """The errors any operation may answer are declared ones."""
    assert all(ERRORS[e.code] is e for e in COMMON_ERRORS)


# -- results ------------------------------------------------------------------------------


def test_a_mined_write_fits_the_transaction_result() -> None:
    """What a write answers once mined is a valid TransactionResult."""
    receipt = {
        "transactionHash": "0x" + "ab" * 32,
        "blockNumber": "0x10",
        "gasUsed": "0x5208",
        "contractAddress": None,
        "status": "0x1",
    }
    answer = {**receipt_summary(receipt), "from": "0x" + "11" * 20, "nonce": 3}
    assert TransactionResult.model_validate(answer).block_number == 16
