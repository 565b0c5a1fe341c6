"""The OpenAPI document of the whole API, and the Prometheus metrics."""

from __future__ import annotations

import json
import re
from typing import Any

from ethgw_wire.http_api import ENDPOINTS
from tests.gateway.conftest import Fakes, Gateway, StartGateway


async def test_openapi_describes_the_whole_api(gateway: Gateway) -> None:
    """One document holds every REST route, /rpc, tasks and the operator endpoints,
    not the internal registry."""
    async with gateway.client(None) as client:
        document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    for endpoint in ENDPOINTS:
        assert endpoint.method.lower() in paths[endpoint.full_path], endpoint.full_path
    for path in ("/rpc", "/api/v1/tasks/{task_id}", "/admin/cluster", "/admin/instances"):
        assert path in paths
    assert "/admin/nodes/{node_id}/restart" in paths
    assert not any(p.startswith("/registry") for p in paths)
    assert "ApiKey" in document["components"]["securitySchemes"]


async def test_openapi_shows_parameters_of_an_operation(gateway: Gateway) -> None:
    """A read's query parameters and a write's JSON body are in the document."""
    async with gateway.client(None) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    balance = paths["/api/v1/token/balance"]["get"]["parameters"]
    assert [p["name"] for p in balance if p["in"] == "query"] == ["address"]
    assert "requestBody" in paths["/api/v1/token/transfer"]["post"]


async def _document(gateway: Gateway) -> dict[str, Any]:
    async with gateway.client(None) as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


async def test_openapi_lists_what_the_gateway_answers_on_its_own_routes(gateway: Gateway) -> None:
    """Every keyed route lists 401, 429 and 500, every admin route 403, a node action its
    unknown node (404) and a manager that does not offer it (501), /rpc its answer to
    notifications only (204) and a body over the limit (413)."""
    paths = (await _document(gateway))["paths"]
    for path, operations in paths.items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            assert {"401", "429", "500"} <= set(operation["responses"]), (method, path)
            if path.startswith("/admin/"):
                assert "403" in operation["responses"], (method, path)
    cordon = paths["/admin/nodes/{node_id}/cordon"]["post"]["responses"]
    assert {"404", "422", "501", "502", "503", "504"} <= set(cordon)
    assert {"204", "413"} <= set(paths["/rpc"]["post"]["responses"])


async def test_openapi_bounds_are_json_schema_keywords(gateway: Gateway) -> None:
    """A bounded number says so with minimum/exclusiveMinimum/maximum: no pydantic-only
    gt/ge/lt/le, which clients and schemathesis ignore (value 0 passed for a positive)."""
    schemas = (await _document(gateway))["components"]["schemas"]
    assert not re.search(r'"(gt|ge|lt|le)": ', json.dumps(schemas))
    assert schemas["TransferParams"]["properties"]["value"]["exclusiveMinimum"] == 0


async def test_a_body_that_is_not_utf8_json_is_a_documented_400_naming_the_body(
    gateway: Gateway,
) -> None:
    """A POST whose body cannot be read as JSON at all gets 400 bad_request naming the
    field `body`, and every operation with a body documents that 400."""
    async with gateway.client("admin") as client:
        answer = await client.post(
            "/api/v1/token/add", content=b"\xff\x1d", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("bad_request", "body")
    paths = (await _document(gateway))["paths"]
    for endpoint in ENDPOINTS:
        if endpoint.method == "POST":
            assert "400" in paths[endpoint.full_path]["post"]["responses"], endpoint.full_path


async def test_a_post_without_a_body_is_a_422_naming_the_body(gateway: Gateway) -> None:
    """A POST of an operation with no body at all gets 422 invalid_params naming the field
    `body`, in its error and in its list of problems (as the ErrorEnvelope documents)."""
    async with gateway.client("admin") as client:
        answer = await client.post("/api/v1/token/add")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "body"
    assert answer.json()["errors"] == [{"field": "body", "reason": "Field required"}]


async def test_a_405_allows_every_method_of_its_path(gateway: Gateway) -> None:
    """OPTIONS on a path that GET and POST serve on two routes gets 405 with both in
    Allow, not only the first route's method."""
    async with gateway.client("admin") as client:
        answer = await client.options("/api/v1/accounts")
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "GET, POST"


async def test_metrics_count_requests_by_route_and_status(wired: Gateway) -> None:
    """Requests are counted under their route template, method and status."""
    async with wired.client() as client:
        await client.get("/api/v1/projects/7/purchases")
        text = (await client.get("/metrics")).text
    assert (
        'ethgw_gateway_requests_total{method="GET",route="/api/v1/projects/{projectId}/purchases",'
        'status="200"}' in text
    )
    assert "ethgw_gateway_request_duration_seconds_bucket" in text


async def test_metrics_show_breaker_state_per_instance(
    start_gateway: StartGateway, fakes: Fakes, dead_url: str
) -> None:
    """An open breaker shows as 2, a closed one as 0, per instance."""
    gateway = await start_gateway(breaker_failure_threshold=1)
    await gateway.register(fakes.read_a)
    await gateway.register_url("read-dead", "read", dead_url)
    async with gateway.client() as client:
        for _ in range(2):
            await client.get("/api/v1/conn/blockNum")
        text = (await client.get("/metrics")).text
    assert 'ethgw_gateway_breaker_state{instance="read-dead",kind="read"} 2.0' in text
    assert 'ethgw_gateway_breaker_state{instance="read-a",kind="read"} 0.0' in text
    assert 'ethgw_gateway_upstream_failures_total{kind="read",reason="connect"}' in text


async def test_metrics_count_rate_limited_requests(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """A 429 is counted by role."""
    gateway = await start_gateway(user_rate_per_s=0.1, user_burst=1)
    await gateway.register(fakes.read_a)
    async with gateway.client() as client:
        await client.get("/api/v1/conn/blockNum")
        await client.get("/api/v1/conn/blockNum")
        text = (await client.get("/metrics")).text
    assert 'ethgw_gateway_rate_limited_total{role="user"}' in text
