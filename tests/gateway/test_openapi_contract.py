"""The gateway's OpenAPI document as a contract a generated client can rely on: typed
data, every answer the stack gives with its headers, resource-style paths beside the
thesis's deprecated ones."""

from __future__ import annotations

import functools
from typing import Any

from ethgw_wire.http_api import ENDPOINTS, Endpoint
from gateway.app import create_app

# What every route of an operation may answer besides 200, wherever it comes from.
ANSWERED_BY_EVERY_ROUTE = {"202", "401", "422", "429", "503"}


@functools.cache
def _document() -> dict[str, Any]:
    return create_app().openapi()


def _answers(endpoint: Endpoint) -> dict[str, Any]:
    answers: dict[str, Any] = _document()["paths"][endpoint.full_path][endpoint.method.lower()][
        "responses"
    ]
    return answers


def _schema(reference: dict[str, Any]) -> dict[str, Any]:
    name = str(reference["$ref"]).rsplit("/", 1)[-1]
    schema: dict[str, Any] = _document()["components"]["schemas"][name]
    return schema


def test_every_operations_data_has_a_model() -> None:
    """No route's 200 envelope leaves `data` untyped: it refers to a result model."""
    for endpoint in ENDPOINTS:
        envelope = _schema(_answers(endpoint)["200"]["content"]["application/json"]["schema"])
        data = envelope["properties"]["data"]["anyOf"]
        assert [s for s in data if "$ref" in s], endpoint.full_path


def test_every_route_declares_the_answers_of_the_front_door() -> None:
    """202, 401, 422, 429 and 503 are declared on every operation's route."""
    for endpoint in ENDPOINTS:
        assert set(_answers(endpoint)) >= ANSWERED_BY_EVERY_ROUTE, endpoint.full_path


def test_admin_routes_declare_403_and_lookups_declare_404() -> None:
    """A route for admin keys declares 403; a lookup of a block or transaction 404."""
    assert "403" in _answers(_endpoint("POST", "/api/v1/token/add"))
    assert "404" in _answers(_endpoint("GET", "/api/v1/transactions/{txHash}"))
    assert "409" in _answers(_endpoint("POST", "/api/v1/token/transfer"))


def test_answers_declare_their_headers() -> None:
    """202 declares Location and Retry-After, 401 WWW-Authenticate, 429 the RateLimit pair."""
    answers = _answers(_endpoint("GET", "/api/v1/projects"))
    assert set(answers["202"]["headers"]) == {"Location", "Retry-After"}
    assert set(answers["401"]["headers"]) == {"WWW-Authenticate"}
    assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= set(answers["429"]["headers"])


def test_errors_are_declared_with_the_one_error_envelope() -> None:
    """Every failure status of every route refers to ErrorEnvelope, whose error is required."""
    for endpoint in ENDPOINTS:
        for status, answer in _answers(endpoint).items():
            if int(status) >= 400:
                reference = answer["content"]["application/json"]["schema"]["$ref"]
                assert reference.endswith("/ErrorEnvelope"), (endpoint.full_path, status)
    assert "error" in _document()["components"]["schemas"]["ErrorEnvelope"]["required"]


def test_resource_paths_stand_beside_the_deprecated_thesis_paths() -> None:
    """The resource-style paths are documented; the thesis paths they replace are deprecated."""
    paths = _document()["paths"]
    for method, path in [
        ("get", "/api/v1/accounts"),
        ("post", "/api/v1/accounts"),
        ("post", "/api/v1/accounts/{address}/unlock"),
        ("get", "/api/v1/blocks/{blockNumber}"),
        ("get", "/api/v1/blocks/{blockHash}"),
        ("get", "/api/v1/transactions/{txHash}"),
        ("get", "/api/v1/transactions/{txHash}/receipt"),
        ("get", "/api/v1/projects/{projectId}/purchases"),
    ]:
        assert not paths[path][method].get("deprecated"), path
    for method, path in [
        ("get", "/api/v1/admin/list"),
        ("post", "/api/v1/admin/new"),
        ("post", "/api/v1/admin/unlock"),
        ("get", "/api/v1/tx/blocknumber"),
        ("get", "/api/v1/tx/txhash"),
    ]:
        assert paths[path][method]["deprecated"] is True, path


def test_an_alias_is_the_same_operation_not_a_copy() -> None:
    """A resource path and its thesis path route to one operation declaration."""
    [thesis, alias] = [e for e in ENDPOINTS if e.operation_name == "tx.by_hash"]
    assert thesis.operation is alias.operation
    assert (thesis.deprecated, alias.deprecated) == (True, False)


def test_purchases_are_paged() -> None:
    """The purchases of a project take offset and limit, and their data has a next link."""
    endpoint = _endpoint("GET", "/api/v1/projects/{projectId}/purchases")
    names = {p["name"] for p in _document()["paths"][endpoint.full_path]["get"]["parameters"]}
    assert names == {"projectId", "offset", "limit"}
    assert "next" in _document()["components"]["schemas"]["PurchasesResult"]["properties"]


def _endpoint(method: str, full_path: str) -> Endpoint:
    [found] = [e for e in ENDPOINTS if e.method == method and e.full_path == full_path]
    return found
