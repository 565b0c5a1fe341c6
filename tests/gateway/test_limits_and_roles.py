"""Limits on values and sizes, every admin route's key check, and a concurrent burst."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from ethgw_wire.fields import MAX_BYTECODE_BYTES, UINT256_MAX
from ethgw_wire.http_api import ENDPOINTS
from tests.gateway.conftest import Fakes, Gateway, StartGateway

ADDRESS = "0x" + "ab" * 20
HASH = "0x" + "cd" * 32
EMPTY_ABI: list[Any] = []


def admin_routes(gateway: Gateway) -> list[tuple[str, str]]:
    """(method, path) of every admin route the app documents, path parameters filled in.

    Admin by the rule the docs state (the operator routes under /admin/, and the API
    operations marked admin_only), judged here without the middleware that enforces it.
    """
    admin_only = {(e.method, e.full_path) for e in ENDPOINTS if e.admin_only}
    found = []
    for template, operations in gateway.app.openapi()["paths"].items():
        path = re.sub(r"\{action\}", "stop", template)
        path = re.sub(r"\{[^}]+\}", "node-1", path)
        for method in operations:
            if template.startswith("/admin/") or (method.upper(), template) in admin_only:
                found.append((method.upper(), path))
    return found


async def test_admin_routes_are_found_in_the_app(gateway: Gateway) -> None:
    """The enumeration sees the operator routes and the admin-only API operations."""
    paths = {path for _, path in admin_routes(gateway)}
    assert {"/admin/cluster", "/admin/mining/stop", "/api/v1/token/add"} <= paths
    assert "/api/v1/conn/blockNum" not in paths


async def test_every_admin_route_refuses_a_user_key(wired: Gateway, fakes: Fakes) -> None:
    """Each admin route of the app answers 403 to a user key, and forwards nothing."""
    async with wired.client("user") as client:
        answers = {
            (m, p): (await client.request(m, p, json={})).status_code
            for m, p in admin_routes(wired)
        }
    assert set(answers.values()) == {403}, answers
    assert fakes.seen_total() == 0


async def test_every_admin_route_refuses_no_key(wired: Gateway, fakes: Fakes) -> None:
    """Each admin route of the app answers 401 without a key, and forwards nothing."""
    async with wired.client(None) as client:
        answers = {
            (m, p): (await client.request(m, p, json={})).status_code
            for m, p in admin_routes(wired)
        }
    assert set(answers.values()) == {401}, answers
    assert fakes.seen_total() == 0


async def test_a_concurrent_burst_gets_exactly_the_bucket_then_429(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """60 requests at once on a bucket of 20 (slow refill): 20 pass, 40 get 429 + Retry-After."""
    gateway = await start_gateway(user_rate_per_s=0.01, user_burst=20)
    await gateway.register(fakes.read_a, fakes.read_b)
    async with gateway.client("user") as client:
        answers = await asyncio.gather(*(client.get("/api/v1/conn/blockNum") for _ in range(60)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 20 + [429] * 40
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)
    assert len(fakes.read_a.seen) + len(fakes.read_b.seen) == 20


def _deploy(bytecode_bytes: int) -> dict[str, Any]:
    return {"abi": EMPTY_ABI, "bytecode": "0x" + "60" * bytecode_bytes}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/contract/deploy", _deploy(MAX_BYTECODE_BYTES + 1), "bytecode"),
        ("/api/v1/contract/deploy", {"abi": EMPTY_ABI, "bytecode": "0x"}, "bytecode"),
        ("/api/v1/token/add", {"address": ADDRESS, "value": UINT256_MAX + 1}, "value"),
        ("/api/v1/token/add", {"address": ADDRESS, "value": str(UINT256_MAX + 1)}, "value"),
        ("/api/v1/token/add", {"address": ADDRESS, "value": 0}, "value"),
        ("/api/v1/token/set", {"address": ADDRESS, "value": -1}, "value"),
        ("/api/v1/token/add", {"address": ADDRESS, "value": 1.5}, "value"),
        ("/api/v1/token/add", {"address": ADDRESS, "value": True}, "value"),
        (
            "/api/v1/token/publish",
            {"address": ADDRESS, "time": 2**64, "projectName": "p", "projectHash": HASH},
            "time",
        ),
        ("/api/v1/token", {"address": ADDRESS, "time": 1, "projectId": 2**256}, "projectId"),
        (
            "/api/v1/contract/deploy",
            {
                "abi": [{"type": "constructor", "inputs": [{"name": "x", "type": "uint8"}]}],
                "bytecode": "0x60",
                "args": [256],
            },
            "args",
        ),
        ("/api/v1/contract/deploy", {"abi": [{"x": {}}], "bytecode": "0x60"}, "abi"),
    ],
)
async def test_value_out_of_range_is_422_naming_the_field(
    wired: Gateway, fakes: Fakes, path: str, body: dict[str, Any], field: str
) -> None:
    """Sizes and ranges past the limits are refused by the gateway; no service sees them."""
    async with wired.client("admin") as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert fakes.seen_total() == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/contract/deploy", _deploy(MAX_BYTECODE_BYTES)),
        ("/api/v1/token/set", {"address": ADDRESS, "value": UINT256_MAX}),
        ("/api/v1/token/set", {"address": ADDRESS, "value": str(UINT256_MAX)}),
        (
            "/api/v1/token/publish",
            {"address": ADDRESS, "time": 2**64 - 1, "projectName": "p", "projectHash": HASH},
        ),
    ],
)
async def test_value_at_the_limit_is_forwarded(
    wired: Gateway, fakes: Fakes, path: str, body: dict[str, Any]
) -> None:
    """The largest allowed bytecode, uint256 and uint64 values pass to a write instance."""
    async with wired.client("admin") as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert fakes.seen_total() == 1
