"""Behind the gateway, only signed calls pass: the read and write services and the cluster
manager refuse a caller who reaches them directly, through the real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ethgw_wire.callers import CALLER_HEADER
from ethgw_wire.request_auth import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RequestSigner,
    ensure_request_key,
    signing_auth,
)
from tests.pipeline_fixtures import ServerProcess, Stack

pytestmark = pytest.mark.slow

ADMIN_CALLER = "admin:" + "ab" * 6
MINT = {"address": "0x" + "42" * 20, "value": 1}


@pytest_asyncio.fixture(loop_scope="session")
async def direct() -> AsyncIterator[httpx.AsyncClient]:
    """A client that reaches the instances and the manager itself, signing nothing."""
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        yield client


def refused_for(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "unauthenticated_call"
    assert error["field"] == field
    return error


async def test_an_unsigned_read_sent_to_a_read_service_is_401(
    stack: Stack, direct: httpx.AsyncClient
) -> None:
    """GET on a read instance without the gateway's signature: 401 naming the header."""
    response = await direct.get(f"{stack.readers[0].url}/api/v1/conn/blockNum")
    refused_for(response, SIGNATURE_HEADER)


async def test_an_unsigned_write_sent_to_a_write_service_is_401(
    stack: Stack, direct: httpx.AsyncClient
) -> None:
    """An admin mint posted to a write instance with a caller header but no signature: 401."""
    response = await direct.post(
        f"{stack.writers[0].url}/api/v1/token/add",
        json=MINT,
        headers={CALLER_HEADER: ADMIN_CALLER},
    )
    refused_for(response, SIGNATURE_HEADER)


async def test_a_forged_caller_under_a_made_up_signature_is_401(
    stack: Stack, direct: httpx.AsyncClient
) -> None:
    """Every signing header present, the signature invented: 401, nothing submitted."""
    signer = RequestSigner(b"a key of my own making, not the platform's")
    url = f"{stack.writers[0].url}/api/v1/token/add"
    body = httpx.Request("POST", url, json=MINT).read()
    headers = {
        **signer.headers("POST", url, body, ADMIN_CALLER),
        CALLER_HEADER: ADMIN_CALLER,
        "content-type": "application/json",
    }
    assert {SIGNATURE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER} <= headers.keys()
    response = await direct.post(url, content=body, headers=headers)
    refused_for(response, SIGNATURE_HEADER)


async def test_a_direct_unsigned_call_to_the_manager_is_401_and_changes_nothing(
    manager_api: ServerProcess, direct: httpx.AsyncClient
) -> None:
    """POST /nodes/node-1/cordon without a signature: 401, and node-1 is not cordoned."""
    response = await direct.post(f"{manager_api.url}/nodes/node-1/cordon")
    refused_for(response, SIGNATURE_HEADER)
    mining = await direct.post(f"{manager_api.url}/mining/stop")
    refused_for(mining, SIGNATURE_HEADER)
    async with httpx.AsyncClient(timeout=30, auth=signing_auth(), trust_env=False) as signed:
        nodes = (await signed.get(f"{manager_api.url}/nodes")).json()["nodes"]
    assert {n["node_id"]: n["cordoned"] for n in nodes}["node-1"] is False


async def test_a_signed_call_to_the_manager_passes(manager_api: ServerProcess) -> None:
    """The platform's own tools sign with the state folder's key, and the manager answers."""
    key = ensure_request_key()
    async with httpx.AsyncClient(timeout=30, auth=signing_auth(key), trust_env=False) as signed:
        response = await signed.get(f"{manager_api.url}/events")
    assert response.status_code == 200, response.text


async def test_health_and_metrics_stay_open_on_loopback(
    stack: Stack, manager_api: ServerProcess, direct: httpx.AsyncClient
) -> None:
    """/healthz, /readyz and /metrics answer without a signature (supervisors, Prometheus)."""
    reader = stack.readers[0].url
    urls = [f"{reader}/healthz", f"{reader}/readyz", f"{reader}/metrics"]
    urls += [f"{manager_api.url}/healthz", f"{manager_api.url}/metrics"]
    for url in urls:
        # Readiness may be 503 (no routable node): what matters is that it answered.
        assert (await direct.get(url)).status_code in (200, 503), url


async def test_the_gateway_s_calls_pass(stack: Stack) -> None:
    """Through the gateway the same read, and the operator's cluster view, are served."""
    async with httpx.AsyncClient(
        base_url=stack.gateway.url, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as client:
        read = await client.get("/api/v1/conn/blockNum")
        cluster = await client.get("/admin/cluster")
    assert read.status_code == 200, read.text
    assert cluster.status_code == 200, cluster.text
