"""API keys and roles, rate limits, body limits and the gateway's own error envelopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from gateway.keys import create_key
from tests.gateway.conftest import Fakes, Gateway, StartGateway

ADDRESS = "0x" + "ab" * 20
MINT = {"address": ADDRESS, "value": 10}


async def test_no_key_is_401(wired: Gateway, fakes: Fakes) -> None:
    """An API route without X-API-Key is refused 401 before reaching a service."""
    async with wired.client(None) as client:
        answer = await client.get("/api/v1/conn/blockNum")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_api_key"
    assert fakes.seen_total() == 0


async def test_wrong_key_is_401(wired: Gateway, fakes: Fakes) -> None:
    """A key the gateway does not know is refused 401."""
    async with wired.client("ethgw_not-a-key") as client:
        answer = await client.get("/api/v1/conn/blockNum")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert fakes.seen_total() == 0


async def test_no_key_is_401_even_with_invalid_input(wired: Gateway) -> None:
    """Authentication comes before validation: no key, bad body is still 401."""
    async with wired.client(None) as client:
        answer = await client.post("/api/v1/token/add", content=b"{junk")
    assert answer.status_code == 401


async def test_user_key_on_an_admin_api_route_is_403(wired: Gateway, fakes: Fakes) -> None:
    """Minting needs an admin key: a user key gets 403 and nothing is sent."""
    async with wired.client("user") as client:
        answer = await client.post("/api/v1/token/add", json=MINT)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    assert fakes.seen_total() == 0


async def test_every_admin_api_route_refuses_a_user_key(wired: Gateway) -> None:
    """deploy, mint, burn and set all refuse a user key."""
    async with wired.client("user") as client:
        for path in ("/contract/deploy", "/token/add", "/token/delete", "/token/set"):
            answer = await client.post(f"/api/v1{path}", json={})
            assert answer.status_code == 403, path


async def test_user_key_on_an_operator_route_is_403(wired: Gateway) -> None:
    """Operator endpoints need an admin key."""
    async with wired.client("user") as client:
        answers = [
            await client.get("/admin/cluster"),
            await client.get("/admin/instances"),
            await client.post("/admin/nodes/node-1/restart"),
            await client.post("/admin/mining/start"),
        ]
    assert [a.status_code for a in answers] == [403] * 4


async def test_admin_key_reaches_an_admin_api_route(wired: Gateway, fakes: Fakes) -> None:
    """An admin key mints through a write instance."""
    async with wired.client("admin") as client:
        answer = await client.post("/api/v1/token/add", json=MINT)
    assert answer.status_code == 200
    assert answer.json()["data"]["instance"].startswith("write-")


async def test_key_made_while_running_is_accepted(wired: Gateway) -> None:
    """A key created in the keys file after start-up works once the gateway reloads."""
    plaintext = create_key(wired.state_dir, "late", "user")
    async with wired.client(plaintext) as client:
        for _ in range(50):
            answer = await client.get("/api/v1/conn/blockNum")
            if answer.status_code != 401:
                break
            await asyncio.sleep(0.1)
    assert answer.status_code == 200


async def test_public_routes_need_no_key(gateway: Gateway) -> None:
    """Health, metrics and the API document are open."""
    async with gateway.client(None) as client:
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path


async def test_rate_limit_is_429_with_retry_after(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """Past its burst a key gets 429 with a Retry-After in whole seconds."""
    gateway = await start_gateway(user_rate_per_s=0.5, user_burst=3)
    await gateway.register(fakes.read_a)
    async with gateway.client("user") as client:
        answers = [await client.get("/api/v1/conn/blockNum") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert len(fakes.read_a.seen) == 3


async def test_rate_limits_are_per_key(start_gateway: StartGateway, fakes: Fakes) -> None:
    """One key's exhausted bucket does not limit another key."""
    gateway = await start_gateway(user_rate_per_s=0.5, user_burst=1)
    await gateway.register(fakes.read_a)
    other = create_key(gateway.state_dir, "other", "user")
    async with gateway.client("user") as first, gateway.client(other) as second:
        assert (await first.get("/api/v1/conn/blockNum")).status_code == 200
        assert (await first.get("/api/v1/conn/blockNum")).status_code == 429
        for _ in range(50):  # the new key shows up at the next reload
            answer = await second.get("/api/v1/conn/blockNum")
            if answer.status_code != 401:
                break
            await asyncio.sleep(0.1)
    assert answer.status_code == 200


async def test_declared_oversized_body_is_413(start_gateway: StartGateway, fakes: Fakes) -> None:
    """A Content-Length over the limit is refused 413 before the body is read."""
    gateway = await start_gateway(body_limit_bytes=2048)
    await gateway.register(fakes.write_a)
    async with gateway.client("admin") as client:
        answer = await client.post(
            "/api/v1/contract/deploy",
            content=b"{" + b" " * 4096 + b"}",
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"
    assert fakes.seen_total() == 0


async def test_streamed_oversized_body_is_413(start_gateway: StartGateway, fakes: Fakes) -> None:
    """A chunked body without Content-Length is cut off and refused once past the limit."""
    gateway = await start_gateway(body_limit_bytes=2048)
    await gateway.register(fakes.write_a)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"abi": ['
        for _ in range(100):
            yield b"{}, " * 10
        yield b"{}]}"

    async with gateway.client("admin") as client:
        answer = await client.post(
            "/api/v1/contract/deploy",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"
    assert fakes.seen_total() == 0


async def test_unknown_route_is_a_404_envelope(gateway: Gateway) -> None:
    """A path the gateway does not serve gets a 404 envelope pointing at /docs."""
    async with gateway.client() as client:
        answer = await client.get("/api/v1/nothing/here")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert "/docs" in answer.json()["message"]


async def test_wrong_method_is_a_405_envelope(gateway: Gateway) -> None:
    """A known path with the wrong method gets a 405 envelope."""
    async with gateway.client() as client:
        answer = await client.delete("/api/v1/conn/blockNum")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "http_method_not_allowed"


async def test_readyz_needs_a_read_and_a_write_instance(gateway: Gateway, fakes: Fakes) -> None:
    """/readyz is 503 until one healthy read and one healthy write instance are registered."""
    async with gateway.client(None) as client:
        assert (await client.get("/readyz")).status_code == 503
        await gateway.register(fakes.read_a)
        not_ready = await client.get("/readyz")
        await gateway.register(fakes.write_a)
        ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert "write" in not_ready.json()["message"]
    assert ready.status_code == 200
    assert ready.json()["data"] == {"healthy_instances": {"read": 1, "write": 1}}


async def test_registry_refuses_a_wrong_token(gateway: Gateway, fakes: Fakes) -> None:
    """Registering without the registry token is 401 and registers nothing."""
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        answer = await client.post(
            "/registry/instances",
            json={"instance_id": "evil", "kind": "read", "url": "http://127.0.0.1:1"},
            headers={"X-Registry-Token": "guess"},
        )
    assert answer.status_code == 401
    assert gateway.state.registry.instances() == []
