"""The registry on a real gateway: TTL expiry and the RegistryClient services use."""

from __future__ import annotations

import asyncio

import pytest

from ethgw_wire.registration import InstanceRegistration, RegistryClient
from tests.gateway.conftest import Fakes, StartGateway


def _client(url: str, token: str, fake_url: str, instance_id: str = "read-a") -> RegistryClient:
    registration = InstanceRegistration(instance_id=instance_id, kind="read", url=fake_url)
    return RegistryClient(url, token, registration, timeout_s=2.0)


async def test_silent_instance_expires_after_the_ttl(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """An instance that stops heartbeating while another of its kind beats is dropped."""
    gateway = await start_gateway(registry_ttl_s=0.6)
    await gateway.register(fakes.read_a)
    client = _client(gateway.url, gateway.token, fakes.read_b.url, instance_id="read-b")
    async with client.running(ttl_s=30):
        await asyncio.sleep(1.0)
        assert [i.instance_id for i in gateway.state.registry.instances()] == ["read-b"]


async def test_when_every_instance_falls_silent_the_gateway_still_routes_to_them(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """Fail static: the last instances of a kind are kept and still answer reads."""
    gateway = await start_gateway(registry_ttl_s=0.6)
    await gateway.register(fakes.read_a)
    await asyncio.sleep(1.0)
    async with gateway.client() as client:
        answer = await client.get("/api/v1/conn/blockNum")
    assert answer.status_code == 200
    assert [i.instance_id for i in gateway.state.registry.instances()] == ["read-a"]


async def test_client_heartbeats_keep_the_instance_registered(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """RegistryClient.running() registers and heartbeats past several TTLs, then
    deregisters on exit."""
    gateway = await start_gateway(registry_ttl_s=0.6)
    client = _client(gateway.url, gateway.token, fakes.read_a.url)
    # A service configured with a longer TTL still beats at the gateway's pace.
    async with client.running(ttl_s=30):
        assert client.ttl_s == pytest.approx(0.6)
        await asyncio.sleep(1.5)
        assert [i.instance_id for i in gateway.state.registry.instances()] == ["read-a"]
        async with gateway.client() as api:
            assert (await api.get("/api/v1/conn/blockNum")).status_code == 200
    assert gateway.state.registry.instances() == []


async def test_client_registers_again_when_the_gateway_forgot_it(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """A heartbeat answered 404 (a restarted gateway) leads to a new registration."""
    gateway = await start_gateway()
    async with _client(gateway.url, gateway.token, fakes.read_a.url) as client:
        assert await client.register()
        gateway.state.registry.deregister("read-a")
        assert await client.heartbeat()
    assert [i.instance_id for i in gateway.state.registry.instances()] == ["read-a"]


async def test_client_survives_an_unreachable_gateway(dead_url: str, fakes: Fakes) -> None:
    """With no gateway listening, register, heartbeat and deregister return False."""
    async with _client(dead_url, "token", fakes.read_a.url) as client:
        assert not await client.register()
        assert not await client.heartbeat()
        assert not await client.deregister()


async def test_client_with_a_wrong_token_is_not_registered(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """A wrong token is refused and reported, not raised."""
    gateway = await start_gateway()
    async with _client(gateway.url, "wrong", fakes.read_a.url) as client:
        assert not await client.register()
        assert not client.registered
    assert gateway.state.registry.instances() == []
