"""Fixtures of the gateway tests: fake service instances and a fake cluster manager
started once per session, and a fresh gateway (own state folder, own registry) per test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from ethgw_wire.http_api import API_KEY_HEADER
from ethgw_wire.registration import REGISTRY_PATH, REGISTRY_TOKEN_HEADER
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.instance_registry import Instance
from gateway.keys import create_key, read_admin_key
from gateway.state import GatewayState
from service_kit.ports import free_port
from tests.gateway.servers import FakeManager, FakeService, ServerThread


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the environment of the run."""
    for name in list(os.environ):
        if name.startswith("ETHGW_GATEWAY_"):
            monkeypatch.delenv(name)


@dataclass
class Fakes:
    read_a: FakeService
    read_b: FakeService
    write_a: FakeService
    write_b: FakeService

    def all(self) -> list[FakeService]:
        return [self.read_a, self.read_b, self.write_a, self.write_b]

    def seen_total(self) -> int:
        return sum(len(f.seen) for f in self.all())


@pytest.fixture(scope="session")
def _fake_services() -> Iterator[Fakes]:
    fakes = Fakes(
        FakeService("read", "read-a"),
        FakeService("read", "read-b"),
        FakeService("write", "write-a"),
        FakeService("write", "write-b"),
    )
    for fake in fakes.all():
        fake.server = ServerThread(fake.app())
        fake.server.start()
    yield fakes
    for fake in fakes.all():
        assert fake.server is not None
        fake.server.stop()


@pytest.fixture
def fakes(_fake_services: Fakes) -> Fakes:
    """Two read and two write instances, answering normally, with nothing recorded."""
    for fake in _fake_services.all():
        fake.reset()
    return _fake_services


@pytest.fixture(scope="session")
def _fake_manager() -> Iterator[FakeManager]:
    manager = FakeManager()
    manager.server = ServerThread(manager.app())
    manager.server.start()
    yield manager
    manager.server.stop()


@pytest.fixture
def manager(_fake_manager: FakeManager) -> FakeManager:
    _fake_manager.actions.clear()
    return _fake_manager


@dataclass
class Gateway:
    url: str
    state_dir: Path
    admin_key: str
    user_key: str
    token: str
    app: FastAPI

    @property
    def state(self) -> GatewayState:
        state: GatewayState = self.app.state.gateway
        return state

    def client(self, key: str | None = "user", **kwargs: Any) -> httpx.AsyncClient:
        """A client with the user or admin key (or a literal key; None: no key)."""
        plaintext = {"user": self.user_key, "admin": self.admin_key}.get(key or "", key)
        headers = {API_KEY_HEADER: plaintext} if plaintext else {}
        return httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=10, trust_env=False, **kwargs
        )

    async def register(self, *fakes: FakeService) -> None:
        for fake in fakes:
            await self.register_url(fake.instance_id, fake.kind, fake.url)

    async def register_url(self, instance_id: str, kind: str, url: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as client:
            response = await client.post(
                REGISTRY_PATH,
                json={"instance_id": instance_id, "kind": kind, "url": url},
                headers={REGISTRY_TOKEN_HEADER: self.token},
            )
        assert response.status_code == 201, response.text

    def instance(self, instance_id: str) -> Instance:
        instance = self.state.registry.get(instance_id)
        assert instance is not None
        return instance


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture
async def start_gateway(tmp_path: Path, _fake_manager: FakeManager) -> AsyncIterator[StartGateway]:
    """Start a gateway with test settings (short timeouts, breaker threshold 2, the fake
    manager), overridable by keyword; stopped after the test."""
    servers: list[ServerThread] = []

    async def start(**overrides: Any) -> Gateway:
        state_dir = tmp_path / f"state-{len(servers)}"
        user_key = create_key(state_dir, "tester", "user")
        defaults: dict[str, Any] = {
            "state_dir": state_dir,
            "upstream_timeout_s": 1.0,
            "upstream_connect_timeout_s": 0.5,
            "breaker_failure_threshold": 2,
            "breaker_open_s": 30.0,
            "registry_ttl_s": 30.0,
            "user_burst": 10_000,
            "manager_url": _fake_manager.url,
            "keys_reload_s": 0.2,
            "startup_grace_s": 0.0,  # a test without instances wants its 503 at once
        }
        app = create_app(GatewaySettings(**{**defaults, **overrides}))
        server = ServerThread(app)
        servers.append(server)
        await asyncio.to_thread(server.start)
        admin_key = read_admin_key(state_dir)
        assert admin_key is not None
        return Gateway(
            server.url, state_dir, admin_key, user_key, app.state.gateway.registry_token, app
        )

    yield start
    for server in servers:
        await asyncio.to_thread(server.stop)


@pytest_asyncio.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    """A gateway with the test settings and no instance registered."""
    return await start_gateway()


@pytest_asyncio.fixture
async def wired(gateway: Gateway, fakes: Fakes) -> Gateway:
    """A gateway with the two read and the two write fake instances registered."""
    await gateway.register(*fakes.all())
    return gateway


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"
